# A variant: imports its parent, turns the GPU off with lib.mkForce false
# and puts a parameter first with lib.mkBefore.
{ lib, ... }:
{
  imports = [ ../. ];
  hardware.acmegpu.loadInInitrd = lib.mkForce false;
  boot.kernelParams = lib.mkBefore [ "acme.quirk=1" ];
  boot.kernelModules = lib.mkAfter [ "coretemp" ];
  hardware.enableRedistributableFirmware = true;
}
