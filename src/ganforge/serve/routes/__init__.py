"""The studio's routes, one router per area: `pages` (the static page), `runs` (listing, curves, sample grids,
the server's own status), `generate` (images, animations and style mixing from seeds) and `translate`
(image-to-image: uploads and the run's example inputs). `serve.app.create_app` includes them in that order."""
