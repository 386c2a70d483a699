{
  description = "xtcp2 for Deno: stream the kernel's per-socket TCP state (netlink inet_diag) as protobuf records";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      flags = "--allow-ffi --allow-read --allow-write --allow-sys=hostname";
      xtcp2 = pkgs.writeShellApplication {
        name = "xtcp2";
        runtimeInputs = [ pkgs.deno ];
        text = ''
          exec deno run ${flags} ${self}/src/cmd/xtcp2.ts "$@"
        '';
      };
    in
    {
      packages.${system}.default = xtcp2;
      apps.${system}.default = {
        type = "app";
        program = "${xtcp2}/bin/xtcp2";
      };
      devShells.${system}.default = pkgs.mkShell {
        packages = [ pkgs.deno pkgs.iproute2 pkgs.tshark pkgs.nodejs ];
      };
    };
}
