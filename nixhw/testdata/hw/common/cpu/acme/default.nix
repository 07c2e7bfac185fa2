# Shape of nixos-hardware's common/gpu modules: an option declared with a
# default and read back through config.
{ config, lib, ... }:
let
  cfg = config.hardware.acmegpu;
in
{
  options.hardware.acmegpu = {
    driver = lib.mkOption {
      type = lib.types.enum [ "acme_gpu" "acme_xe" ];
      default = "acme_gpu";
      description = "GPU driver";
    };
    loadInInitrd = lib.mkEnableOption "loading the GPU driver in the initrd" // {
      default = true;
    };
  };

  config = {
    boot.initrd.kernelModules = lib.optionals cfg.loadInInitrd [ cfg.driver ];
    hardware.cpu.acme.updateMicrocode = lib.mkDefault config.hardware.enableRedistributableFirmware;
  };
}
