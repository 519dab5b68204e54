"""Our real receiver app served over HTTP in a thread, on a port that survives being taken down and brought back."""

from __future__ import annotations

import threading

from werkzeug.serving import BaseWSGIServer, make_server

from services.cli.app import App


class LiveReceiver:
    def __init__(self, app: App, port: int = 0) -> None:
        self.app, self.port = app, port
        self.server: BaseWSGIServer | None = None

    def start(self) -> None:
        server = make_server("127.0.0.1", self.port, self.app.receiver(), threaded=True)
        self.port = server.server_port  # a later start() reuses it, so the CMS's settings stay right
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.server = server

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
