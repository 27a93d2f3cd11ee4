"""The benchmark's web service: answers every GET with its colour and version."""

import http.server
import os

VERSION = open("/app/VERSION").read().strip()
COLOR = os.environ.get("DEPLOY_COLOR", "?")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{COLOR} {VERSION}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
