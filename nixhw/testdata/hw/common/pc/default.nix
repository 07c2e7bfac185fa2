{ config, lib, ... }:
{
  boot.blacklistedKernelModules = lib.optionals (!config.hardware.enableRedistributableFirmware) [
    "ath3k"
  ];
  services.tlp.enable = lib.mkDefault (!config.services.power-profiles-daemon.enable);
}
