#!/usr/bin/python3
"""Drives xtcp2's gRPC API from a client that is not ours: Debian's python3-grpcio (the C core).

Requests are encoded by hand here and responses are printed as base64 (one message per line), so
neither side shares code with the server. Errors print "ERROR <CODE> <details>" and exit 3.

Usage: grpc_interop.py HOST:PORT get
       grpc_interop.py HOST:PORT set-poll-frequency FREQ_SECONDS TIMEOUT_SECONDS
       grpc_interop.py HOST:PORT records N
Environment: XTCP_API_TOKEN, when set, is sent as a bearer token.
"""
import base64
import os
import sys

import grpc


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def duration(seconds):
    # google.protobuf.Duration { int64 seconds = 1; }
    return varint(1 << 3 | 0) + varint(seconds)


def main():
    target, command = sys.argv[1], sys.argv[2]
    token = os.environ.get("XTCP_API_TOKEN")
    metadata = [("authorization", "Bearer " + token)] if token else None
    same = lambda b: b  # noqa: E731 -- bytes in, bytes out
    with grpc.insecure_channel(target) as channel:
        try:
            if command == "get":
                call = channel.unary_unary(
                    "/xtcp_config.v1.ConfigService/Get",
                    request_serializer=same, response_deserializer=same)
                print(base64.b64encode(call(b"", timeout=10, metadata=metadata)).decode())
            elif command == "set-poll-frequency":
                # SetPollFrequencyRequest { Duration poll_frequency = 20; Duration poll_timeout = 30; }
                req = field_bytes(20, duration(int(sys.argv[3]))) + \
                    field_bytes(30, duration(int(sys.argv[4])))
                call = channel.unary_unary(
                    "/xtcp_config.v1.ConfigService/SetPollFrequency",
                    request_serializer=same, response_deserializer=same)
                print(base64.b64encode(call(req, timeout=10, metadata=metadata)).decode())
            elif command == "records":
                want = int(sys.argv[3])
                call = channel.unary_stream(
                    "/xtcp_flat_record.v1.XTCPFlatRecordService/FlatRecords",
                    request_serializer=same, response_deserializer=same)
                stream = call(b"", timeout=60, metadata=metadata)
                got = 0
                for msg in stream:
                    print(base64.b64encode(msg).decode(), flush=True)
                    got += 1
                    if got >= want:
                        stream.cancel()
                        break
            else:
                print("unknown command " + command, file=sys.stderr)
                return 2
        except grpc.RpcError as err:
            print("ERROR %s %s" % (err.code().name, err.details()))
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
