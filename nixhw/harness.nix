# mcinit's evaluation harness for nixos-hardware profiles.
#
# It evaluates one profile the way NixOS's module system would, but only as
# far as the options mcinit reads, with `pkgs` as a lazy stub and without
# NixOS itself. Run by nixhw.Evaluate through
#   nix-instantiate --eval --strict --json harness.nix --argstr profile P ...
#
# Arguments (all strings):
#   profile  absolute path of the profile (a .nix file or a directory)
#   nixpkgs  a nixpkgs checkout: its lib/ replaces the harness's own lib
#            and its lib.evalModules does the merging
#   only     evaluate just this option, without catching errors, so that
#            nix-instantiate prints why it cannot be resolved
#
# Result: { "<option>" = { success = bool; value = "<JSON>"; }; } for every
# option in `wanted` (or the value of `only` as JSON text).
{ profile, nixpkgs ? "", only ? "" }:
let
  b = builtins;

  # ---------------------------------------------------------------- stubs
  # Unresolvable things throw this marker; tryEval catches throws, and the
  # message (seen when re-run with `only`) names the cause.
  unresolved = what: b.throw "mcinit-unresolved: ${what}";

  # Attribute names a stub offers: every `.name` in the profile's module
  # files (Nix has no catch-all attribute sets, so the stub lists the
  # names the profile can reach).
  names = b.foldl' (acc: f: acc // harvest f) { } moduleFiles;
  harvest = f:
    let parts = b.split "[.]([A-Za-z_][A-Za-z0-9_'-]*)" (b.readFile f);
    in b.listToAttrs (map (m: { name = b.head m; value = null; }) (b.filter b.isList parts));

  # A stub for pkgs.<path>: any harvested attribute gives a deeper stub,
  # calling it gives a stub of the call, and using it as a string is
  # unresolved (never a made-up value).
  mkStub = p: b.mapAttrs (n: _: mkStub "${p}.${n}") names // {
    _mcinitStub = p;
    __functor = self: arg: mkStub "${p}(${describeArg arg})";
    __toString = self: unresolved "pkgs${p} (a package)";
  };
  describeArg = a:
    if b.isPath a then "./" + b.baseNameOf a
    else if b.isString a then a
    else if isStub a then "pkgs${a._mcinitStub}"
    else "…";
  isStub = v: b.isAttrs v && v ? _mcinitStub;
  pkgs = mkStub "";

  # ------------------------------------------------------------ own lib
  # The parts of nixpkgs' lib nixos-hardware profiles use, with the module
  # system's property constructors in nixpkgs' shapes.
  ownLib = rec {
    inherit (b) head tail elem filter length attrNames attrValues concatLists
      concatStringsSep genList foldl' isAttrs isList isString isBool isInt isFunction
      mapAttrs listToAttrs removeAttrs hasAttr intersectAttrs toString baseNameOf
      pathExists readFile toJSON fromJSON;
    id = x: x;
    const = x: _: x;
    flip = f: a: c: f c a;
    pipe = b.foldl' (x: f: f x);
    last = l: b.elemAt l (b.length l - 1);
    init = l: b.genList (b.elemAt l) (b.length l - 1);
    toList = x: if b.isList x then x else [ x ];
    optional = cond: x: if checkBool "lib.optional" cond then [ x ] else [ ];
    optionals = cond: xs: if checkBool "lib.optionals" cond then xs else [ ];
    optionalString = cond: s: if checkBool "lib.optionalString" cond then s else "";
    optionalAttrs = cond: a: if checkBool "lib.optionalAttrs" cond then a else { };
    concatMap = f: l: b.concatLists (map f l);
    concatMapStrings = f: l: b.concatStringsSep "" (map f l);
    concatMapStringsSep = sep: f: l: b.concatStringsSep sep (map f l);
    concatStrings = b.concatStringsSep "";
    mapAttrsToList = f: a: map (n: f n a.${n}) (b.attrNames a);
    filterAttrs = pred: a: b.listToAttrs (b.concatMap (n: if pred n a.${n} then [{ name = n; value = a.${n}; }] else [ ]) (b.attrNames a));
    genAttrs = ns: f: b.listToAttrs (map (n: { name = n; value = f n; }) ns);
    nameValuePair = name: value: { inherit name value; };
    any = b.any;
    all = b.all;
    foldr = op: nul: l: b.foldl' (acc: x: op x acc) nul (reverseList l);
    reverseList = l: b.genList (i: b.elemAt l (b.length l - 1 - i)) (b.length l);
    hasPrefix = p: s: b.substring 0 (b.stringLength p) s == p;
    hasSuffix = x: s: let ls = b.stringLength s; lx = b.stringLength x; in lx <= ls && b.substring (ls - lx) lx s == x;
    removePrefix = p: s: if hasPrefix p s then b.substring (b.stringLength p) (-1) s else s;
    intersectLists = e: b.filter (x: b.elem x e);
    subtractLists = e: b.filter (x: !(b.elem x e));
    unique = b.foldl' (acc: e: if b.elem e acc then acc else acc ++ [ e ]) [ ];
    sort = b.sort;
    range = first: last: if first > last then [ ] else b.genList (n: first + n) (last - first + 1);
    boolToString = x: if x then "true" else "false";
    recursiveUpdate = l: r: l // b.mapAttrs (n: v: if b.isAttrs v && b.isAttrs (l.${n} or null) then recursiveUpdate l.${n} v else v) r;
    attrByPath = path: d: a: if path == [ ] then a else if a ? ${b.head path} then attrByPath (b.tail path) d a.${b.head path} else d;
    getAttrFromPath = path: a: b.foldl' (x: n: x.${n}) a path;
    importJSON = f: b.fromJSON (b.readFile f);
    versionAtLeast = v: w: b.compareVersions (checkVersion v) (checkVersion w) >= 0;
    versionOlder = v: w: b.compareVersions (checkVersion v) (checkVersion w) < 0;
    versions = {
      major = v: b.head (b.splitVersion (checkVersion v));
      majorMinor = v: let p = b.splitVersion (checkVersion v); in "${b.elemAt p 0}.${b.elemAt p 1}";
    };
    strings = { inherit hasPrefix hasSuffix removePrefix optionalString concatStringsSep concatMapStringsSep; concatLines = l: b.concatStringsSep "" (map (x: x + "\n") l); };
    lists = { inherit optional optionals last init toList unique foldr reverseList; };
    attrsets = { inherit genAttrs filterAttrs mapAttrsToList recursiveUpdate attrByPath; };
    trivial = { inherit id const flip pipe boolToString; };
    getExe = p: unresolved "lib.getExe (a package)";
    getBin = p: unresolved "lib.getBin (a package)";
    makeBinPath = ps: unresolved "lib.makeBinPath (packages)";
    escapeShellArg = s: "'${b.replaceStrings [ "'" ] [ "'\\''" ] (toString s)}'";
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    literalExample = literalExpression;
    mdDoc = x: x;
    maintainers = { };
    licenses = { };
    platforms = { };
    kernel = {
      yes = "y"; no = "n"; module = "m"; freeform = x: x;
      option = x: x;
    };

    # The module system's properties, in nixpkgs' shapes.
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkOverride = priority: content: { _type = "override"; inherit priority content; };
    mkOptionDefault = mkOverride 1500;
    mkDefault = mkOverride 1000;
    mkImageMediaOverride = mkOverride 60;
    mkForce = mkOverride 50;
    mkVMOverride = mkOverride 10;
    mkOrder = priority: content: { _type = "order"; inherit priority content; };
    mkBefore = mkOrder 500;
    mkAfter = mkOrder 1500;
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = name: mkOption { type = types.bool; default = false; description = "Whether to enable ${name}."; };
    mkPackageOption = _pkgs: name: extra: mkOption ({ type = types.package; default = mkStub ".${if b.isList name then b.concatStringsSep "." name else name}"; } // b.removeAttrs extra [ "default" "pkgsText" "extraDescription" ]);
    mkRemovedOptionModule = _: _: { };
    mkRenamedOptionModule = _: _: { };
    mkAliasOptionModule = _: _: { };
    mkChangedOptionModule = _: _: _: { };

    types = rec {
      mk = kind: extra: { _type = "mcinitType"; inherit kind; } // extra;
      bool = mk "equal" { name = "bool"; };
      str = mk "equal" { name = "str"; };
      int = mk "equal" { name = "int"; };
      ints = { unsigned = int; positive = int; u8 = int; u16 = int; u32 = int; between = _: _: int; };
      float = mk "equal" { name = "float"; };
      number = float;
      path = mk "equal" { name = "path"; };
      package = mk "equal" { name = "package"; };
      raw = mk "equal" { name = "raw"; };
      unspecified = mk "equal" { name = "unspecified"; };
      anything = mk "anything" { name = "anything"; };
      attrs = mk "anything" { name = "attrs"; };
      enum = _: mk "equal" { name = "enum"; };
      strMatching = _: str;
      nonEmptyStr = str;
      singleLineStr = str;
      lines = mk "sep" { name = "lines"; sep = "\n"; };
      commas = mk "sep" { name = "commas"; sep = ","; };
      separatedString = sep: mk "sep" { name = "separatedString"; inherit sep; };
      listOf = elemType: mk "list" { name = "listOf"; inherit elemType; };
      nonEmptyListOf = listOf;
      attrsOf = elemType: mk "attrsOf" { name = "attrsOf"; inherit elemType; };
      lazyAttrsOf = attrsOf;
      nullOr = t: t // { nullable = true; };
      either = t1: t2: if t1.kind == "list" && t2.kind == "list" then t1 else mk "either" { name = "either"; types = [ t1 t2 ]; };
      oneOf = ts: mk "either" { name = "oneOf"; types = ts; };
      coercedTo = from: f: to: to;
      functionTo = _: mk "equal" { name = "functionTo"; };
      submodule = m: mk "submodule" { name = "submodule"; modules = ownLib.toList m; };
      submoduleWith = a: mk "submodule" { name = "submodule"; modules = a.modules; };
      uniq = t: t;
      unique = _: t: t;
      port = int;
      addCheck = t: _: t;
    };
  };
  checkBool = what: c:
    if b.isBool c then c
    else if isStub c then unresolved "pkgs${c._mcinitStub} (a package value used as a condition of ${what})"
    else unresolved "a condition of ${what} is not a boolean";
  checkVersion = v:
    if b.isString v then v
    else if isStub v then unresolved "pkgs${v._mcinitStub} (a version of a package)"
    else unresolved "a version is not a string";

  useNixpkgs = nixpkgs != "";
  lib = if useNixpkgs then import (/. + nixpkgs + "/lib") else ownLib;

  profilePath = asFile (/. + profile);
  asFile = m: if b.pathExists (m + "/default.nix") then m + "/default.nix" else m;

  # -------------------------------------------------- the options read
  # NixOS's declarations (type and default) of the options mcinit imports
  # and of the ones profiles commonly read through config. A profile's
  # values are what it gives on top of these defaults.
  declarations = { lib, ... }: with lib; {
    options = {
      boot.initrd.kernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
      boot.initrd.availableKernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
      boot.initrd.includeDefaultModules = mkOption { type = types.bool; default = true; };
      boot.initrd.network.enable = mkOption { type = types.bool; default = false; };
      boot.initrd.systemd.enable = mkOption { type = types.bool; default = false; };
      boot.kernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
      boot.blacklistedKernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
      boot.kernelParams = mkOption { type = types.listOf types.str; default = [ ]; };
      boot.kernelPackages = mkOption { type = types.raw; default = mkStub ".linuxPackages" // { _mcinitDefault = true; }; };
      hardware.deviceTree.enable = mkOption { type = types.bool; default = false; };
      hardware.deviceTree.name = mkOption { type = types.nullOr types.str; default = null; };
      hardware.deviceTree.filter = mkOption { type = types.nullOr types.str; default = null; };
      hardware.deviceTree.overlays = mkOption { type = types.listOf types.raw; default = [ ]; };
      hardware.firmware = mkOption { type = types.listOf types.raw; default = [ ]; };
      hardware.enableRedistributableFirmware = mkOption { type = types.bool; default = false; };
      hardware.enableAllFirmware = mkOption { type = types.bool; default = false; };
      hardware.bluetooth.enable = mkOption { type = types.bool; default = false; };
      hardware.graphics.enable = mkOption { type = types.bool; default = false; };
      services.xserver.enable = mkOption { type = types.bool; default = false; };
      services.power-profiles-daemon.enable = mkOption { type = types.bool; default = false; };
      networking.wireless.iwd.enable = mkOption { type = types.bool; default = false; };
      nixpkgs.config.allowUnfree = mkOption { type = types.bool; default = false; };
    };
  };

  wanted = {
    "boot.initrd.kernelModules" = c: strings c.boot.initrd.kernelModules;
    "boot.initrd.availableKernelModules" = c: strings c.boot.initrd.availableKernelModules;
    "boot.kernelModules" = c: strings c.boot.kernelModules;
    "boot.blacklistedKernelModules" = c: strings c.boot.blacklistedKernelModules;
    "boot.kernelParams" = c: strings c.boot.kernelParams;
    "boot.kernelPackages" = c: package "boot.kernelPackages" c.boot.kernelPackages;
    "hardware.deviceTree.name" = c: c.hardware.deviceTree.name;
    "hardware.deviceTree.filter" = c: c.hardware.deviceTree.filter;
    "hardware.deviceTree.overlays" = c: map overlay c.hardware.deviceTree.overlays;
    "hardware.firmware" = c: map (package "hardware.firmware") c.hardware.firmware;
    "hardware.enableRedistributableFirmware" = c: c.hardware.enableRedistributableFirmware;
  };
  strings = map (s: if b.isString s then s else if isStub s then unresolved "pkgs${s._mcinitStub} (a package where a string belongs)" else unresolved "a list entry is not a string");
  # A package is named by its nixpkgs attribute path; anything computed
  # from one (a call, an override) is not a name mcinit can record.
  package = opt: v:
    if v ? _mcinitDefault then null
    else if isStub v && b.match "[.][A-Za-z0-9_.'-]+" v._mcinitStub != null then b.substring 1 (-1) v._mcinitStub
    else if isStub v then unresolved "${opt} (a package: pkgs${v._mcinitStub})"
    else unresolved "${opt} (a package)";
  overlay = o:
    if b.isPath o then { name = b.baseNameOf o; filter = null; }
    else if b.isAttrs o && o ? name then { name = o.name; filter = o.filter or null; }
    else unresolved "hardware.deviceTree.overlays (an overlay without a name)";

  # --------------------------------------------------- module collection
  specialArgs = {
    inherit pkgs;
    # NixOS's own modules are not here: importing one fails, naming this
    # path; disabledModules entries relative to it are harmless.
    modulesPath = "/mcinit-has-no-nixos-modules";
  };
  # Call a module function with the arguments it names (NixOS passes
  # config, options, lib, pkgs and _module.args the same way).
  callModule = file: m: args:
    let
      v = if b.isPath m || b.isString m then import m else m;
      fa = b.functionArgs v;
      given = if fa == { } then args else
        b.mapAttrs (n: _: args.${n} or (unresolved "module argument ${n} of ${file}")) (b.removeAttrs fa (b.filter (n: fa.${n} && !(args ? ${n})) (b.attrNames fa)));
    in if b.isFunction v || (b.isAttrs v && v ? __functor) then v given else v;
  moduleOf = key: file: m: args:
    let
      a = callModule file m args;
      structured = a ? config || a ? options;
    in {
      inherit key file;
      imports = a.imports or [ ];
      options = a.options or { };
      config = if structured then a.config or { } else b.removeAttrs a [ "imports" "_file" "key" "disabledModules" "meta" "freeformType" "_class" ];
    };
  # All modules of the profile, each once (a file imported twice is one
  # module, as in NixOS).
  closure = args: b.genericClosure {
    startSet = [ (moduleOf profile (toString profilePath) profilePath args) ];
    operator = mod: ownLib.genList (i:
      let m = b.elemAt mod.imports i; in
      if b.isPath m then
        # NixOS keys a module by the path as written, so ./x and
        # ./x/default.nix are two modules there too.
        let p = asFile m; in moduleOf (toString m) (toString p) p args
      else moduleOf "${mod.key}:${toString i}" mod.file m args) (b.length mod.imports);
  };
  moduleFiles = ownLib.unique (b.filter (f: b.match ".*:[0-9]+" f == null && f != "submodule") (map (m: m.file) (closure ownArgs)));

  # ------------------------------------------------- own module system
  isProp = t: v: b.isAttrs v && (v._type or null) == t;
  isOption = v: b.isAttrs v && (v._type or null) == "option";
  # A plain attribute set, as opposed to a value of an option.
  isPlain = v: b.isAttrs v && !(v ? _type) && !(v ? _mcinitStub) && !(v ? outPath) && !(v ? __functor);

  # Push mkIf/mkMerge/mkOverride/mkOrder down into the attributes of a
  # definition, without evaluating any condition (conditions read config).
  pushDown = v:
    if isProp "merge" v then ownLib.concatMap pushDown v.contents
    else if isProp "if" v then map (b.mapAttrs (_: ownLib.mkIf v.condition)) (pushDown v.content)
    else if isProp "override" v then map (b.mapAttrs (_: ownLib.mkOverride v.priority)) (pushDown v.content)
    else if isProp "order" v then map (b.mapAttrs (_: ownLib.mkOrder v.priority)) (pushDown v.content)
    else [ v ];
  # The innermost values of a definition (to tell leaves from sets).
  contents = v:
    if isProp "merge" v then ownLib.concatMap contents v.contents
    else if isProp "if" v || isProp "override" v || isProp "order" v then contents v.content
    else [ v ];
  # Evaluate the conditions and split a definition into its values, each
  # with its override and order priorities.
  discharge = prio: order: v:
    if isProp "merge" v then ownLib.concatMap (discharge prio order) v.contents
    else if isProp "if" v then (if checkBool "lib.mkIf" v.condition then discharge prio order v.content else [ ])
    else if isProp "override" v then discharge v.priority order v.content
    else if isProp "order" v then discharge prio v.priority v.content
    else [ { inherit prio order; value = v; } ];

  # The value of one option from its definitions (defs: list of
  # { file; value; }), as NixOS computes it: the highest override priority
  # wins; lists of that priority are concatenated in mkOrder order.
  mergeOption = path: type: default: defs:
    let
      all = ownLib.concatMap (d: discharge 100 1000 d.value) defs
        ++ (if default.has then [ { prio = 1500; order = 1000; value = default.value; } ] else [ ]);
      top = b.foldl' (m: d: if d.prio < m then d.prio else m) 9999 all;
      winners = b.filter (d: d.prio == top) all;
      ordered = b.sort (x: y: x.order < y.order) winners;
      vals = map (d: d.value) ordered;
    in
    if all == [ ] then unresolved "${path} (used but not defined)"
    else mergeValues path type vals;
  mergeValues = path: type: vals:
    let kind = if type == null then "guess" else type.kind; in
    if kind == "list" || (kind == "guess" && b.all b.isList vals) then
      (if b.all b.isList vals then b.concatLists vals else unresolved "${path} (a list definition is not a list)")
    else if kind == "sep" then b.concatStringsSep type.sep vals
    else if kind == "attrsOf" then mergeSets path type.elemType (map (v: { file = path; value = v; }) vals)
    else if kind == "submodule" then
      (evalConfig (type.modules ++ map (v: { config = v; }) vals)).config
    else if b.length vals == 1 then b.head vals
    else if b.any isStub vals then unresolved "${path} (conflicting package definitions)"
    else if b.all (v: v == b.head vals) (b.tail vals) then b.head vals
    else unresolved "${path} (conflicting definitions)";
  # attrsOf: each attribute merged on its own.
  mergeSets = path: elemType: defs:
    let
      pushed = ownLib.concatMap (d: map (v: { inherit (d) file; value = v; }) (pushDown d.value)) defs;
      ns = ownLib.unique (ownLib.concatMap (d: b.attrNames d.value) pushed);
    in b.listToAttrs (map (n: {
      name = n;
      value = mergeOption "${path}.${n}" elemType { has = false; } (ownLib.concatMap (d: if d.value ? ${n} then [ { inherit (d) file; value = d.value.${n}; } ] else [ ]) pushed);
    }) ns);

  # One level of config: decls is the declared-options tree at this path,
  # defs the definitions of this path.
  mergeLevel = path: decls: defs:
    if isOption decls then
      mergeOption path (decls.type or null) { has = decls ? default; value = decls.default or null; } defs
    else
      let
        leaf = b.any (d: b.any (c: !(isPlain c)) (contents d.value)) defs;
        pushed = ownLib.concatMap (d: map (v: { inherit (d) file; value = v; }) (pushDown d.value)) defs;
        ns = ownLib.unique (b.attrNames decls ++ ownLib.concatMap (d: b.attrNames d.value) pushed);
        sub = n: ownLib.concatMap (d: if d.value ? ${n} then [ { inherit (d) file; value = d.value.${n}; } ] else [ ]) pushed;
        p = n: if path == "" then n else "${path}.${n}";
      in
      if leaf && decls == { } then mergeOption path null { has = false; } defs
      else b.listToAttrs (map (n: { name = n; value = mergeLevel (p n) (decls.${n} or { }) (sub n); }) ns);

  # Merge option declarations (an option is a leaf; sets are merged).
  mergeDecls = a: c: a // b.mapAttrs (n: v: if a ? ${n} && !(isOption v) && !(isOption a.${n}) then mergeDecls a.${n} v else v) c;

  evalConfig = modules:
    let
      args = { inherit config lib pkgs; options = decls; } // specialArgs;
      mods = map (m: moduleOf "sub" "submodule" m args) modules;
      decls = b.foldl' mergeDecls { } (map (m: m.options) mods);
      config = mergeLevel "" decls (map (m: { inherit (m) file; value = m.config; }) mods);
    in { inherit config; };

  ownArgs = { inherit lib pkgs; config = ownConfig; options = optionsTree [ ] ownDecls; } // specialArgs;
  # The `options` argument: each declaration with `value` and `isDefined`
  # (true when it has a default, as NixOS counts the default as a
  # definition, or when its definitions give a value).
  optionsTree = path: d:
    if isOption d then
      let value = b.foldl' (x: n: x.${n}) ownConfig path;
      in d // { inherit value; isDefined = d ? default || (b.tryEval value).success; }
    else b.mapAttrs (n: optionsTree (path ++ [ n ])) d;
  # NixOS merges the collected modules in reverse order: definitions of
  # imported modules come before those of the modules importing them.
  ownMods = ownLib.reverseList (closure ownArgs) ++ [ (moduleOf "mcinit-declarations" "mcinit-declarations" declarations ownArgs) ];
  ownDecls = b.foldl' mergeDecls { } (map (m: m.options) ownMods);
  ownConfig = mergeLevel "" ownDecls (map (m: { inherit (m) file; value = m.config; }) ownMods);

  # ------------------------------------------------ nixpkgs' evalModules
  nixpkgsConfig = (lib.evalModules {
    modules = [ profilePath declarations { _module.check = false; } ];
    specialArgs = specialArgs;
  }).config;

  config = if useNixpkgs then nixpkgsConfig else ownConfig;

  result = b.mapAttrs (n: f: b.tryEval (b.toJSON (f config))) wanted;
in
if only != "" then b.toJSON (wanted.${only} config) else result
