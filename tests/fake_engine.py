"""A fake Docker Engine API on a unix socket, to play a hostile engine: it answers what a test
tells it to (any JSON, any bytes, late), and records every request it got.

The answers start as a plain engine's for one running container ``web`` on the default bridge
(172.17.0.2, network 172.17.0.0/16, gateway 172.17.0.1, bridge docker0); a test changes them.
"""
import copy
import json
import os
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

WEB_ID = "ab" * 32
NETWORK_ID = "cd" * 32


def container(ip="172.17.0.2", network="bridge", ip6=""):
    return {"Id": WEB_ID, "Name": "/web", "State": {"Running": True, "Status": "running"},
            "HostConfig": {"NetworkMode": "default"},
            "NetworkSettings": {"Networks": {network: {"NetworkID": NETWORK_ID, "IPAddress": ip,
                                                       "GlobalIPv6Address": ip6}}}}


def network(name="bridge", bridge=None, subnets=(("172.17.0.0/16", "172.17.0.1"),)):
    options = {"com.docker.network.bridge.name": bridge} if bridge is not None else {}
    return {"Id": NETWORK_ID, "Name": name, "Driver": "bridge", "Internal": False, "Options": options,
            "IPAM": {"Config": [{"Subnet": subnet, "Gateway": gateway} for subnet, gateway in subnets]}}


PLAIN = {
    "/version": {"Version": "20.10.24", "ApiVersion": "1.41"},
    "/info": {"SecurityOptions": []},
    "/containers/web/json": container(),
    "/containers/%s/json" % WEB_ID: container(),
    "/networks/%s" % NETWORK_ID: network(),
    "/containers/json": [],
    "/networks": [],
}


class FakeEngine:
    """``answers``: {path: JSON value, or bytes sent as they are}; ``delay``: seconds before each
    answer; ``requests``: [(method, path)] received."""

    def __init__(self, directory):
        self.socket_path = os.path.join(str(directory), "docker.sock")
        self.answers = copy.deepcopy(PLAIN)
        self.delay = 0
        self.requests = []
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self):
                path = urlsplit(self.path).path
                engine.requests.append((self.command, path))
                time.sleep(engine.delay)
                if path not in engine.answers:
                    body, status = b'{"message": "not found"}', 404
                else:
                    value = engine.answers[path]
                    body, status = value if isinstance(value, bytes) else json.dumps(value).encode(), 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_DELETE = answer

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

            def get_request(self):
                request, dummy = super().get_request()
                return request, ("fake", 0)  # BaseHTTPRequestHandler wants a (host, port) address

        self.server = Server(self.socket_path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "unix://" + self.socket_path

    def writes(self):
        """Requests that would change something on a real engine."""
        return [request for request in self.requests if request[0] != "GET"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
