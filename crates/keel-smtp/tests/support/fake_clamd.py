#!/usr/bin/env python3
"""A fake clamd for tests: zPING / zINSTREAM over TCP (clamd's protocol, see
clamd(8)). It answers 'stream: Eicar-Signature FOUND' when the stream contains the
EICAR test string, 'stream: Heuristics.Encrypted.Zip FOUND' for the marker
KEEL-ENCRYPTED-TEST, else 'stream: OK'. Prints its port on stdout, then serves until
killed. Usage: fake_clamd.py"""
import socketserver
import struct
import sys

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class Handler(socketserver.BaseRequestHandler):
    def read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.request.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def handle(self):
        cmd = b""
        while not cmd.endswith(b"\0"):
            c = self.request.recv(1)
            if not c:
                return
            cmd += c
        if cmd == b"zPING\0":
            self.request.sendall(b"PONG\0")
            return
        if cmd != b"zINSTREAM\0":
            self.request.sendall(b"UNKNOWN COMMAND\0")
            return
        data = b""
        while True:
            (n,) = struct.unpack(">I", self.read_exact(4))
            if n == 0:
                break
            data += self.read_exact(n)
        if EICAR in data:
            self.request.sendall(b"stream: Eicar-Signature FOUND\0")
        elif b"KEEL-ENCRYPTED-TEST" in data:
            self.request.sendall(b"stream: Heuristics.Encrypted.Zip FOUND\0")
        else:
            self.request.sendall(b"stream: OK\0")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    srv = Server(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    sys.stdout.close()
    srv.serve_forever()
