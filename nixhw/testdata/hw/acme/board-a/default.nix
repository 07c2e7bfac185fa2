# Literal lists, lib.mkDefault, `++ lib.optional config.… "x"` and imports
# across directories.
{ config, lib, pkgs, ... }:
{
  imports = [
    ../../common/cpu/acme
    ../../common/pc
  ];

  boot.kernelPackages = lib.mkDefault pkgs.linuxPackages_latest;
  boot.initrd.availableKernelModules = [
    "nvme"
    "xhci_pci"
  ]
  ++ lib.optional config.boot.initrd.network.enable "r8169"
  ++ lib.optional (!config.boot.initrd.network.enable) "usb_storage";
  boot.kernelModules = [ "kvm-intel" ];
  boot.kernelParams = [ "mem_sleep_default=deep" ];
  hardware.firmware = [ pkgs.linux-firmware ];

  networking.networkmanager.wifi.powersave = lib.mkDefault false;
}
