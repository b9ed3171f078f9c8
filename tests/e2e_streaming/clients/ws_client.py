#!/usr/bin/env python3
"""A WebSocket client of berth's streaming server built on Debian's python3-websocket
(websocket-client): exec/attach (remotecommand) and port-forward. Prints one JSON object."""
import argparse
import base64
import hashlib
import json
import sys

import websocket

p = argparse.ArgumentParser()
p.add_argument("url")
p.add_argument("--protocol", default="v5.channel.k8s.io")
p.add_argument("--stdin", default=None, help="sent on stdin, then stdin is closed (v5)")
p.add_argument("--resize", default=None, help="W,H sent on the resize channel first")
p.add_argument("--portforward", action="store_true")
p.add_argument("--send", default="", help="port-forward: bytes sent on the data channel")
p.add_argument("--expect", default=None,
               help="stdin stays open until stdout holds this text (then it is closed, v5)")
p.add_argument("--lines", type=int, default=0, help="go away once stdout holds this many lines")
p.add_argument("--ready-file", default=None, help="created once the first stdout bytes came")
p.add_argument("--cafile", default=None, help="https URLs: the certificate to trust")
a = p.parse_args()

b64 = "base64" in a.protocol
url = a.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
sslopt = {"ca_certs": a.cafile} if a.cafile else {}
ws = websocket.create_connection(url, subprotocols=[a.protocol], timeout=120, sslopt=sslopt)


def send(ch, data):
    if b64:
        ws.send(chr(ord("0") + ch) + base64.b64encode(data).decode())
    else:
        ws.send_binary(bytes([ch]) + data)


if a.portforward:
    send(0, a.send.encode())
elif a.resize:
    w, h = a.resize.split(",")
    send(4, json.dumps({"Width": int(w), "Height": int(h)}).encode())
stdin_open = False
if not a.portforward and a.stdin is not None:
    send(0, a.stdin.encode())
    stdin_open = True
    if a.expect is None and a.protocol == "v5.channel.k8s.io":
        send(255, bytes([0]))
        stdin_open = False

chans = {}
firsts = {}
while True:
    try:
        op, data = ws.recv_data()
    except websocket.WebSocketConnectionClosedException:
        break
    except websocket.WebSocketTimeoutException:
        print(json.dumps({"timeout": True}))
        sys.exit(2)
    if op == websocket.ABNF.OPCODE_CLOSE:
        break
    if not data:
        continue
    if b64:
        ch, payload = data[0] - ord("0"), base64.b64decode(data[1:])
    else:
        ch, payload = data[0], data[1:]
    if a.portforward and ch not in firsts:
        firsts[ch] = payload[:2]
        payload = payload[2:]
    chans.setdefault(ch, bytearray()).extend(payload)
    if ch != 1 or not (a.ready_file or stdin_open or a.lines):
        continue
    out_now = bytes(chans.get(1, b""))
    if payload and a.ready_file:
        open(a.ready_file, "w").close()
        a.ready_file = None
    if stdin_open and a.expect is not None and a.expect.encode() in out_now:
        stdin_open = False
        if a.protocol != "v5.channel.k8s.io":  # no close signal before v5: go away
            ws.close()
            break
        send(255, bytes([0]))
    if a.lines and out_now.count(b"\n") >= a.lines:
        ws.close()
        break

out = bytes(chans.get(1 if not a.portforward else 0, b""))
result = {
    "protocol": ws.subprotocol,
    "stdout_len": len(out),
    "stdout_sha256": hashlib.sha256(out).hexdigest(),
    "stdout": out[:4096].decode("utf-8", "replace"),
    "stderr": bytes(chans.get(2, b"")).decode("utf-8", "replace"),
    "error": bytes(chans.get(3 if not a.portforward else 1, b"")).decode("utf-8", "replace"),
    "ports": {str(k): int.from_bytes(v, "little") for k, v in firsts.items()},
}
print(json.dumps(result))
