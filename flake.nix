{
  description = "xtcp2 for Deno: stream the kernel's per-socket TCP state (netlink inet_diag) as protobuf records";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      # The flags of the deno.json tasks of the same names.
      bin = name: flags: script: pkgs.writeShellApplication {
        inherit name;
        runtimeInputs = [ pkgs.deno ];
        text = ''
          exec deno run ${flags} ${self}/${script} "$@"
        '';
      };
      xtcp2 = bin "xtcp2"
        "--v8-flags=--expose-gc --allow-ffi --allow-read --allow-write --allow-env --allow-net --allow-sys=hostname --allow-run=lldpcli"
        "src/cmd/xtcp2.ts";
      xtcp2client = bin "xtcp2client" "--allow-net" "src/cmd/xtcp2client.ts";
      xtcp2ctl = bin "xtcp2ctl" "--allow-net --allow-read" "src/cmd/xtcp2ctl.ts";
      xtcp2_minimal = bin "xtcp2_minimal"
        "--v8-flags=--expose-gc --allow-ffi --allow-read --allow-write --allow-env --allow-net --allow-sys=hostname --allow-run=lldpcli"
        "src/cmd/xtcp2_minimal.ts";
      ns = bin "ns" "--allow-ffi --allow-read --allow-net" "src/cmd/ns.ts";
      nstest = bin "nstest" "--allow-run=ip --allow-ffi" "src/cmd/nstest.ts";
      xtcp2_kafka_client = bin "xtcp2_kafka_client"
        "--allow-net --allow-env=NODE_ENV,KAFKAJS_LOG_LEVEL,KAFKAJS_NO_PARTITIONER_WARNING,KAFKAJS_DEBUG_PROTOCOL_BUFFERS,KAFKAJS_DEBUG_EXTENDED_PROTOCOL_BUFFERS"
        "src/cmd/xtcp2_kafka_client.ts";
      app = p: { type = "app"; program = "${p}/bin/${p.name}"; };
    in
    {
      packages.${system} = {
        default = xtcp2;
        inherit xtcp2 xtcp2client xtcp2ctl xtcp2_minimal ns nstest xtcp2_kafka_client;
      };
      apps.${system} = {
        default = app xtcp2;
        xtcp2 = app xtcp2;
        xtcp2client = app xtcp2client;
        xtcp2ctl = app xtcp2ctl;
        xtcp2_minimal = app xtcp2_minimal;
        ns = app ns;
        nstest = app nstest;
        xtcp2_kafka_client = app xtcp2_kafka_client;
      };
      # What the test suite uses (quickstart.sh installs the same on Debian).
      devShells.${system}.default = pkgs.mkShell {
        packages = [
          pkgs.deno
          pkgs.nodejs
          pkgs.iproute2
          pkgs.tshark
          pkgs.libcap
          pkgs.prometheus
          (pkgs.python3.withPackages (ps: [ ps.grpcio ]))
        ];
      };
    };
}
