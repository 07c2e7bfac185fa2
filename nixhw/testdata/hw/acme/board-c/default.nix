# What the harness cannot know: a kernel built by a function, a kernel
# version, and a firmware package computed by callPackage.
{ config, lib, pkgs, ... }:
{
  boot.kernelPackages = pkgs.linuxPackagesFor (pkgs.callPackage ./kernel.nix { });
  boot.kernelParams = lib.optionals (lib.versionOlder config.boot.kernelPackages.kernel.version "6.2") [
    "acme.psr=0"
  ];
  boot.initrd.availableKernelModules = [ "ahci" ];
  hardware.firmware = [ (pkgs.callPackage ./firmware.nix { }) ];
}
