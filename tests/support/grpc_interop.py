#!/usr/bin/python3
"""Drives xtcp2's gRPC API from a client that is not ours: Debian's python3-grpcio (the C core).

Requests are encoded by hand here and responses are printed as base64 (one message per line), so
neither side shares code with the server. Errors print "ERROR <CODE> <details>" and exit 3.

Usage: grpc_interop.py HOST:PORT get
       grpc_interop.py HOST:PORT set-poll-frequency FREQ_SECONDS TIMEOUT_SECONDS
       grpc_interop.py HOST:PORT records N
       grpc_interop.py HOST:PORT reflect v1|v1alpha list            one service name per line
       grpc_interop.py HOST:PORT reflect v1|v1alpha symbol NAME     "file NAME" per descriptor,
                                                                    "method SVC/M" per method
       grpc_interop.py HOST:PORT reflect v1|v1alpha filename NAME   the same, by file name
       grpc_interop.py HOST:PORT health-check [SERVICE]             the status's name
       grpc_interop.py HOST:PORT health-watch SECONDS [SERVICE]     each status as it comes
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


def fields(buf):
    """(number, wire type, value) of each field of a message: ints for varints, bytes else."""
    out, i = [], 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wire)
        out.append((number, wire, value))
    return out


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def field(buf, number):
    """The values of field `number` of a message."""
    return [v for (n, _, v) in fields(buf) if n == number]


HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _has_file(pool, name):
    try:
        pool.FindFileByName(name)
        return True
    except KeyError:
        return False


def reflect(channel, version, what, arg, metadata):
    """One ServerReflectionInfo exchange; prints what the response says."""
    # ServerReflectionRequest { string host = 1; oneof { file_by_filename = 3;
    #   file_containing_symbol = 4; list_services = 7; } }
    number = {"list": 7, "symbol": 4, "filename": 3}[what]
    req = field_bytes(1, b"localhost") + field_bytes(number, (arg or "").encode())
    same = lambda b: b  # noqa: E731
    call = channel.stream_stream(
        "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
        request_serializer=same, response_deserializer=same)
    responses = list(call(iter([req]), timeout=10, metadata=metadata))
    if len(responses) != 1:
        raise ValueError("%d responses to one request" % len(responses))
    res = responses[0]
    # ServerReflectionResponse { valid_host = 1; original_request = 2; file_descriptor_response = 4;
    #   list_services_response = 6; error_response = 7; }
    if field(res, 2) != [req]:
        raise ValueError("original_request is not the request sent")
    for err in field(res, 7):
        code = field(err, 1)
        message = field(err, 2)
        print("error %d %s" % (code[0] if code else 0, message[0].decode() if message else ""))
    for listing in field(res, 6):
        for svc in field(listing, 1):
            print(field(svc, 1)[0].decode())
    descriptors = [fd for fdr in field(res, 4) for fd in field(fdr, 1)]
    if descriptors:
        # What grpcurl does with them: load them into a descriptor pool (python3-protobuf, a
        # dependency of python3-grpcio), which checks every reference resolves.
        from google.protobuf import descriptor_pb2, descriptor_pool
        pool = descriptor_pool.DescriptorPool()
        pending = [descriptor_pb2.FileDescriptorProto.FromString(fd) for fd in descriptors]
        while pending:
            added = [f for f in pending if all(_has_file(pool, d) for d in f.dependency)]
            if not added:
                raise ValueError("unresolvable imports: %s" % [f.name for f in pending])
            for f in added:
                pool.Add(f)
            pending = [f for f in pending if f not in added]
        if what == "symbol":
            print("pool " + pool.FindFileContainingSymbol(arg).name)
    for fd in descriptors:
        # FileDescriptorProto { name = 1; package = 2; service = 6 { name = 1; method = 2 { name = 1 } } }
        name = field(fd, 1)[0].decode()
        package = field(fd, 2)[0].decode() if field(fd, 2) else ""
        print("file " + name)
        for svc in field(fd, 6):
            sname = field(svc, 1)[0].decode()
            for method in field(svc, 2):
                print("method %s.%s/%s" % (package, sname, field(method, 1)[0].decode()))


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
            elif command == "reflect":
                reflect(channel, sys.argv[3], sys.argv[4],
                        sys.argv[5] if len(sys.argv) > 5 else "", metadata)
            elif command == "health-check":
                # HealthCheckRequest { string service = 1; } → HealthCheckResponse { status = 1; }
                service = sys.argv[3] if len(sys.argv) > 3 else ""
                call = channel.unary_unary(
                    "/grpc.health.v1.Health/Check",
                    request_serializer=same, response_deserializer=same)
                res = call(field_bytes(1, service.encode()) if service else b"", timeout=10)
                status = field(res, 1)
                print(HEALTH_STATUS[status[0] if status else 0])
            elif command == "health-watch":
                seconds = float(sys.argv[3])
                service = sys.argv[4] if len(sys.argv) > 4 else ""
                call = channel.unary_stream(
                    "/grpc.health.v1.Health/Watch",
                    request_serializer=same, response_deserializer=same)
                stream = call(field_bytes(1, service.encode()) if service else b"",
                              timeout=seconds)
                try:
                    for res in stream:
                        status = field(res, 1)
                        print(HEALTH_STATUS[status[0] if status else 0], flush=True)
                    print("END", flush=True)
                except grpc.RpcError as err:
                    if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                        raise
                    print("DEADLINE", flush=True)
            else:
                print("unknown command " + command, file=sys.stderr)
                return 2
        except grpc.RpcError as err:
            print("ERROR %s %s" % (err.code().name, err.details()))
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
