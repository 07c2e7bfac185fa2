# Priorities and conditions: a mkDefault list loses to a plain one, two
# plain lists are concatenated, a disabled feature's mkIf contributes
# nothing, mkMerge and mkOverride, and a device tree.
{ config, lib, ... }:
let
  cfg = config.hardware.acme-b;
in
{
  imports = [ ./overlay.nix ];

  options.hardware.acme-b = {
    fan.enable = lib.mkEnableOption "the fan overlay";
    serial = lib.mkOption {
      type = lib.types.bool;
      default = true;
    };
  };

  config = lib.mkMerge [
    {
      boot.initrd.kernelModules = lib.mkDefault [ "from_default" ];
      boot.initrd.availableKernelModules = [ "sdhci_of_arasan" ];
      hardware.deviceTree = {
        name = "rockchip/rk3399-acme-b.dtb";
        filter = lib.mkDefault "rk3399-*.dtb";
      };
    }
    { boot.initrd.kernelModules = [ "i2c_rk3x" ]; }
    { boot.initrd.kernelModules = [ "rk808_regulator" ]; }
    (lib.mkIf cfg.fan.enable {
      boot.kernelModules = [ "pwm_fan" ];
      hardware.deviceTree.overlays = [
        { name = "acme-fan"; dtsText = "/dts-v1/; / { };"; }
      ];
    })
    (lib.mkIf cfg.serial {
      boot.kernelParams = [ "console=ttyS2,1500000" ];
    })
    { boot.kernelParams = lib.mkOverride 900 [ "quiet" ]; }
  ];
}
