"""A scriptable local HTTP server for download and preflight tests (no network needed).

``LocalServer.route(path, body=..., status=..., headers=..., ...)`` registers a response; the
server records every request (method, path, Range header) in ``.requests``.
"""

from __future__ import annotations

import http.server
import threading
import time


class Route:
    def __init__(self, body=b"", status=200, headers=(), location=None, head_status=None,
                 ranges=True, drop_after=None, fail_times=0, fail_status=503, delay=0.0):
        self.body, self.status, self.headers = body, status, list(headers)
        self.location = location          # redirect target (status 301/302)
        self.head_status = head_status    # e.g. 405: HEAD refused
        self.ranges = ranges              # honour Range: bytes=N-
        self.drop_after = drop_after      # first GET: close the connection after this many bytes
        self.fail_times = fail_times      # first GETs answered with fail_status
        self.fail_status = fail_status
        self.delay = delay                # seconds before answering (timeouts)
        self.gets = 0


class LocalServer:
    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _route(self, method):
                server.requests.append((method, self.path, self.headers.get("Range")))
                r = server.routes.get(self.path)
                if r is None:
                    self.send_error(404)
                    return None
                if r.delay:
                    time.sleep(r.delay)
                return r

            def do_HEAD(self):
                r = self._route("HEAD")
                if r is None:
                    return
                if r.head_status:
                    self.send_response(r.head_status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._answer(r, head=True)

            def do_GET(self):
                r = self._route("GET")
                if r is None:
                    return
                r.gets += 1
                if r.gets <= r.fail_times:
                    self.send_response(r.fail_status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._answer(r, head=False)

            def _answer(self, r, head):
                if r.location:
                    self.send_response(r.status)
                    self.send_header("Location", r.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, status, extra = r.body, r.status, []
                rng = self.headers.get("Range")
                if rng and r.ranges and rng.startswith("bytes="):
                    first, _, last = rng[6:].partition("-")
                    a = int(first)
                    b = int(last) if last else len(r.body) - 1
                    if a >= len(r.body):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    body, status = r.body[a:b + 1], 206
                    extra = [("Content-Range", f"bytes {a}-{a + len(body) - 1}/{len(r.body)}")]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for k, v in list(r.headers) + extra:
                    self.send_header(k, v)
                self.end_headers()
                if head:
                    return
                if r.drop_after is not None and r.gets == 1 + r.fail_times:
                    self.wfile.write(body[:r.drop_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self._srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._srv.daemon_threads = True
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._srv.server_address[1]}{path}"

    def route(self, path: str, **kw) -> str:
        self.routes[path] = Route(**kw)
        return self.url(path)

    def close(self):
        self._srv.shutdown()
        self._srv.server_close()
        self._thread.join()
