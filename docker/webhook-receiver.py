"""A webhook receiver for the compose setup: logs every alert it gets, with the result of
checking its Standard Webhooks signature, and answers 204. GET /healthz answers 200."""
import base64, hashlib, hmac, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = base64.b64decode("Y29tcG9zZS1kZW1vLXNlY3JldC0xMjM0NTY=")


class Hook(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        signed = f"{self.headers.get('webhook-id')}.{self.headers.get('webhook-timestamp')}.".encode() + body
        expected = "v1," + base64.b64encode(hmac.new(SECRET, signed, hashlib.sha256).digest()).decode()
        ok = hmac.compare_digest(expected, self.headers.get("webhook-signature", ""))
        try:
            message = json.loads(body)
            kind, alert = message["type"], message["alert"]["id"]
            summary = message["alert"]["summary"]
        except (ValueError, KeyError, TypeError):
            kind, alert, summary = "-", "-", "(not an alert)"
        # One line per webhook: scripts/check-containers.sh counts them by webhook-id and alert.
        print(f"{self.path[1:]}: signature {'ok' if ok else 'BAD'}: {kind} alert {alert} "
              f"webhook-id {self.headers.get('webhook-id')}: {summary}", flush=True)
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Hook).serve_forever()
