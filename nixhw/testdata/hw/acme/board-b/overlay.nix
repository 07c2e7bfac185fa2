{ lib, ... }:
{
  hardware.deviceTree.filter = "rk3399-acme-b*.dtb";
  hardware.deviceTree.overlays = [
    { name = "acme-leds"; filter = "rk3399-acme-b.dtb"; dtsText = "/dts-v1/; / { };"; }
  ];
}
