"""What wraps every request: WSGI limits on the body, CORS, redirects, the request log and shared headers."""
