"""The routes: each reads its request, calls the service, and answers."""
