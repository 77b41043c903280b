#!/usr/bin/python3
"""Hostile peers against kmsd's HTTPS endpoint, while a well-behaved
client keeps being served (called by tests/test_http.c).

Environment as drive_boto3.py, plus KMSD_PORT, IDLE_TIMEOUT and
REQUEST_TIMEOUT (seconds, as kmsd is configured) and MAX_PER_IP.

  * a Content-Length over 1 MiB: 413 before the body is sent;
  * a chunked body past 1 MiB: the connection is closed;
  * slow loris: many connections sending a header byte a second;
  * a body sent a byte at a time: closed at the request timeout;
  * silent connections: closed at the idle timeout;
  * a flood of clients;
  * more connections from one address than allowed: the extra ones closed.

Meanwhile a boto3 client must get every answer, each within
SERVED_WITHIN seconds (generous: CI shares two cores).
"""
import json
import os
import socket
import ssl
import sys
import threading
import time

import boto3
from botocore.config import Config

E = os.environ
HOST, PORT = "127.0.0.1", int(E["KMSD_PORT"])
IDLE = float(E["IDLE_TIMEOUT"])
REQ_TIMEOUT = float(E["REQUEST_TIMEOUT"])
MAX_PER_IP = int(E["MAX_PER_IP"])
SERVED_WITHIN = 3.0
TLS = ssl.create_default_context(cafile=E["KMSD_CA"])


def kms():
    return boto3.client(
        "kms", endpoint_url=E["KMSD_ENDPOINT"], region_name="local",
        verify=E["KMSD_CA"], aws_access_key_id=E["ADMIN_AKID"],
        aws_secret_access_key=E["ADMIN_SECRET"],
        config=Config(retries={"max_attempts": 1},
                      max_pool_connections=4))


def ok(what):
    print("ok:", what, flush=True)


def tls_conn(timeout=10):
    s = socket.create_connection((HOST, PORT), timeout=timeout)
    return TLS.wrap_socket(s, server_hostname=HOST)


def closed_within(s, seconds):
    """True when the server closes s within seconds (EOF or reset)."""
    s.settimeout(seconds)
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            if s.recv(4096) == b"":
                return True
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return True
    except (socket.timeout, TimeoutError):
        return False
    return False


class Meanwhile:
    """A client calling GenerateRandom in a loop until stopped."""

    def __init__(self, label):
        self.label, self.lat, self.errors = label, [], []
        self.stop = threading.Event()
        self.c = kms()
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                self.c.generate_random(NumberOfBytes=16)
            except Exception as e:  # noqa: BLE001 (any failure counts)
                self.errors.append(repr(e))
            self.lat.append(time.monotonic() - t0)
            time.sleep(0.02)

    def check(self):
        self.stop.set()
        self.t.join()
        assert not self.errors, "%s: %s" % (self.label, self.errors[:3])
        assert len(self.lat) >= 5, "%s: only %d calls" % (self.label,
                                                          len(self.lat))
        worst = max(self.lat)
        assert worst < SERVED_WITHIN, "%s: a call took %.2f s" % (
            self.label, worst)
        ok("%s: %d calls served meanwhile, slowest %.3f s" % (
            self.label, len(self.lat), worst))


# 1. A body over the limit, announced: refused before it is sent.
s = tls_conn()
s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys"
          b"\r\nContent-Type: application/x-amz-json-1.1\r\n"
          b"Content-Length: 2000000\r\n\r\n")
reply = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    reply += b
reply = reply.decode(errors="replace")
assert reply.startswith("HTTP/1.1 413"), reply
assert "ValidationException" in reply and "x-amzn-RequestId" in reply, reply
s.close()
ok("Content-Length over 1 MiB: 413 ValidationException")

# 2. A chunked body past the limit: closed, never answered 200.
s = tls_conn()
s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys"
          b"\r\nTransfer-Encoding: chunked\r\n\r\n")
chunk = b"%x\r\n" % 65536 + b" " * 65536 + b"\r\n"
sent, got = 0, b""
try:
    for _ in range(24):           # 1.5 MiB
        s.sendall(chunk)
        sent += 65536
except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
    pass
assert closed_within(s, 5), "chunked body past 1 MiB: still open"
s.close()
ok("chunked body past 1 MiB: closed (after %d KiB sent)" % (sent // 1024))

# 3-5. Slow loris, a dripping body and silent connections, together,
# with a client served meanwhile.
mw = Meanwhile("slow loris")
lorises = []
for _ in range(min(60, MAX_PER_IP // 2)):
    c = tls_conn()
    c.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
    lorises.append(c)
drip = tls_conn()
drip.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: "
             b"TrentService.ListKeys\r\nContent-Length: 1000\r\n\r\n")
silent = tls_conn()
t0 = time.monotonic()
drip_closed_at = None
secs = 0
while time.monotonic() - t0 < REQ_TIMEOUT + 3:
    for c in lorises:
        try:
            c.sendall(b"X")   # a header byte a second
        except OSError:
            pass
    for _ in range(2):        # the body, a byte every half second
        if drip_closed_at is None:
            try:
                drip.sendall(b"{")
            except OSError:
                drip_closed_at = time.monotonic() - t0
        time.sleep(0.5)
    secs += 1
if drip_closed_at is None and closed_within(drip, 0.5):
    drip_closed_at = time.monotonic() - t0
assert drip_closed_at is not None, "a dripping body was never cut off"
assert drip_closed_at <= REQ_TIMEOUT + 3, drip_closed_at
mw.check()
ok("a body a byte at a time: closed after %.1f s (request timeout %g s)"
   % (drip_closed_at, REQ_TIMEOUT))
assert closed_within(silent, IDLE + 3), "a silent connection stayed open"
ok("a silent connection: closed at the idle timeout (%g s)" % IDLE)
for c in lorises:
    c.close()
ok("%d slow-loris connections, a byte a second for %d s" % (len(lorises),
                                                            secs))

# 6. A flood of clients.
mw = Meanwhile("flood")
flood_calls, flood_errors = [0], []
stop = threading.Event()


def flooder():
    c = kms()
    while not stop.is_set():
        try:
            c.generate_data_key(KeyId=E["FLOOD_KEY"], NumberOfBytes=32)
            flood_calls[0] += 1
        except Exception as e:  # noqa: BLE001
            flood_errors.append(repr(e))


threads = [threading.Thread(target=flooder) for _ in range(24)]
for t in threads:
    t.start()
time.sleep(3)
stop.set()
for t in threads:
    t.join()
mw.check()
assert not flood_errors, flood_errors[:3]
ok("flood: 24 clients, %d GenerateDataKey calls, none failed" %
   flood_calls[0])

# 7. More connections from one address than allowed.
held = []
for _ in range(MAX_PER_IP):
    held.append(socket.create_connection((HOST, PORT), timeout=5))
extra = [socket.create_connection((HOST, PORT), timeout=5) for _ in range(5)]
assert all(closed_within(x, 2) for x in extra), "extra connections kept"
assert not closed_within(held[0], 0.3), "a connection within the limit closed"
for x in held + extra:
    x.close()
time.sleep(0.5)
mw = Meanwhile("after the per-address limit")
time.sleep(0.5)
mw.check()
ok("per-address limit %d: the extra connections closed" % MAX_PER_IP)
print("hostile: all passed")
