#!/usr/bin/python3
"""Peers without credentials cannot grow the audit log without bound
(called by tests/test_http.c; environment as drive_boto3.py).

BURSTS is ADDRESS:N,...: from each address in turn, on one keep-alive
connection, N unsigned requests, each answered
MissingAuthenticationTokenException.  Loopback accepts any 127/8 source
address, so each is a peer of its own.  test_http.c counts the
records."""
import http.client
import json
import os
import ssl

E = os.environ
CTX = ssl.create_default_context(cafile=E["KMSD_CA"])


def burst(source, n):
    c = http.client.HTTPSConnection("127.0.0.1", int(E["KMSD_PORT"]),
                                    context=CTX, timeout=10,
                                    source_address=(source, 0))
    for _ in range(n):
        c.request("POST", "/", body=b"{}", headers={
            "X-Amz-Target": "TrentService.ListKeys",
            "Content-Type": "application/x-amz-json-1.1"})
        a = c.getresponse()
        typ = json.loads(a.read())["__type"]
        assert typ == "MissingAuthenticationTokenException", typ
    c.close()


for spec in E["BURSTS"].split(","):
    source, n = spec.split(":")
    burst(source, int(n))
print("refusal_limit: %s" % E["BURSTS"])
