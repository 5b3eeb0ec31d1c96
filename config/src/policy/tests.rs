//! The policy loader: a good file loads to the expected values; each kind of mistake is
//! reported where it is, with the help an operator needs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

use super::*;
use crate::Loaded;
use std::net::Ipv4Addr;
use std::path::Path;

/// A small vocabulary in the agent's shape (the real one comes from its command table).
fn vocab() -> Vocabulary {
    let mut commands = BTreeMap::new();
    commands.insert(
        "modbus",
        vec![
            "read_coils",
            "read_holding_registers",
            "read_input_registers",
            "write_single_coil",
            "write_single_register",
            "write_multiple_registers",
        ],
    );
    commands.insert(
        "dnp3",
        vec![
            "read",
            "select",
            "operate",
            "direct_operate",
            "cold_restart",
        ],
    );
    commands.insert(
        "s7comm",
        vec!["read_var", "write_var", "plc_stop", "download_block"],
    );
    Vocabulary {
        protocols: vec![
            "arp", "modbus", "dnp3", "iec104", "s7comm", "enip", "dns", "ntp", "syslog",
        ],
        commands,
    }
}

fn load(text: &str) -> Loaded<Policy> {
    load_policy("policy.toml", text, &vocab())
}

/// Asserts that `text` is invalid, that the rendering holds `line` (a whole
/// `PATH:LINE:COL: error: …` line) and, when given, a `help:` line holding `help`.
#[track_caller]
fn assert_error(text: &str, line: &str, help: Option<&str>) {
    let l = load(text);
    let out = l.render();
    assert!(l.config.is_none(), "loaded despite errors:\n{out}");
    assert!(out.lines().any(|x| x == line), "no `{line}` in:\n{out}");
    if let Some(help) = help {
        assert!(
            out.lines()
                .any(|x| x.starts_with("help: ") && x.contains(help)),
            "no help `{help}` in:\n{out}"
        );
    }
}

/// A minimal valid policy, to which each test adds its mistake.
const BASE: &str = r#"[zones]
control = ["10.10.0.0/24"]
scada = ["10.20.0.0/24"]

[[assets]]
name = "plc-1"
ip = "10.10.0.5"
"#;

const GOOD: &str = r#"# substation 7
[policy]
name = "substation-7"
mode = "learn"

[learning]
duration = "3d"
then = "stay"

[zones]
scada = ["10.20.0.0/24"]
control = ["10.10.0.0/24", "fd00:10::/64"]

[[assets]]
name = "plc-1"
ip = "10.10.0.5"
mac = "00:1d:9c:aa:bb:cc"
description = "Modicon M340"

[[assets]]
name = "eng-ws"
mac = "00-1d-9c-00-00-01"

[[allow]]
name = "hmi polls plcs"
from = "zone:scada"
to = "zone:control"
protocol = "modbus"
ports = [502]
functions = ["read_holding_registers", "read_input_registers"]
unit_ids = [1, 2]
registers = ["0-99", "7", 200]
coils = ["0-15"]
severity = "critical"
silence_after = "30s"

[[allow]]
name = "dns"
from = "10.20.0.7"
to = "any"
protocol = "dns"

[[allow]]
name = "engineering"
from = "asset:eng-ws"
to = "asset:plc-1"

[[maintenance]]
name = "firmware update"
from = "asset:eng-ws"
start = "2026-12-01T02:00:00Z"
end = 2026-12-01T04:00:00+01:00

[detectors.port_scan]
enabled = true
distinct_ports = 25
window = "2m"
severity = "warning"

[detectors.rate_anomaly]
k = 3
alpha = 0.2

[detectors.goose]
enabled = false

[detectors.capture]
min_silence = "10m"
factor = 5
"#;

#[test]
fn a_good_policy_loads_to_the_expected_values() {
    let l = load(GOOD);
    assert!(l.diagnostics.is_empty(), "{}", l.render());
    let p = l.config.unwrap();
    assert_eq!(p.name, "substation-7");
    assert_eq!(p.mode, Mode::Learn);
    assert_eq!(
        p.learning,
        Learning {
            duration: HumanDuration::secs(3 * 86_400),
            then: Then::Stay
        }
    );
    // Zones keep the file's order.
    assert_eq!(p.zones.len(), 2);
    assert_eq!(p.zones[0].name, "scada");
    assert_eq!(p.zones[1].name, "control");
    assert_eq!(
        p.zones[1].nets,
        vec![
            Cidr {
                addr: IpAddr::V4(Ipv4Addr::new(10, 10, 0, 0)),
                prefix: 24
            },
            Cidr {
                addr: "fd00:10::".parse().unwrap(),
                prefix: 64
            }
        ]
    );
    assert_eq!(
        p.assets,
        vec![
            AssetDecl {
                name: "plc-1".into(),
                ip: Some("10.10.0.5".parse().unwrap()),
                mac: Some([0x00, 0x1d, 0x9c, 0xaa, 0xbb, 0xcc]),
                description: Some("Modicon M340".into()),
            },
            AssetDecl {
                name: "eng-ws".into(),
                ip: None,
                mac: Some([0x00, 0x1d, 0x9c, 0, 0, 1]),
                description: None,
            }
        ]
    );
    assert_eq!(
        p.allow[0],
        Rule {
            name: "hmi polls plcs".into(),
            from: Endpoint::Zone(0),
            to: Endpoint::Zone(1),
            protocol: Some("modbus".into()),
            ports: vec![502],
            functions: Some(vec![
                "read_holding_registers".into(),
                "read_input_registers".into()
            ]),
            unit_ids: Some(vec![1, 2]),
            registers: Some(vec![
                AddrSpan { first: 0, last: 99 },
                AddrSpan { first: 7, last: 7 },
                AddrSpan {
                    first: 200,
                    last: 200
                }
            ]),
            coils: Some(vec![AddrSpan { first: 0, last: 15 }]),
            severity: Some(Level::Critical),
            silence_after: Some(Duration::from_secs(30)),
        }
    );
    let dns = &p.allow[1];
    assert_eq!(
        dns.from,
        Endpoint::Net(Cidr {
            addr: "10.20.0.7".parse().unwrap(),
            prefix: 32
        })
    );
    assert_eq!(dns.to, Endpoint::Any);
    assert_eq!(dns.protocol.as_deref(), Some("dns"));
    assert_eq!(dns.functions, None);
    assert!(dns.ports.is_empty());
    assert_eq!(p.allow[2].from, Endpoint::Asset(1));
    assert_eq!(p.allow[2].to, Endpoint::Asset(0));
    assert_eq!(p.allow[2].protocol, None);
    assert_eq!(
        p.maintenance,
        vec![Maintenance {
            name: "firmware update".into(),
            from: Endpoint::Asset(1),
            to: Endpoint::Any,
            start: 1_796_090_400,       // 2026-12-01T02:00:00Z
            end: 1_796_090_400 + 3_600, // 04:00 at +01:00 is 03:00Z
        }]
    );
    let mut d = Detectors::default();
    d.port_scan.distinct_ports = 25;
    d.port_scan.window = Duration::from_secs(120);
    d.port_scan.severity = Some(Level::Warning);
    d.rate_anomaly.k = 3.0;
    d.rate_anomaly.alpha = 0.2;
    d.goose.enabled = false;
    d.capture.min_silence = Duration::from_secs(600);
    d.capture.factor = 5;
    assert_eq!(p.detectors, d);
    assert_eq!(p.sha256, sha256_hex(GOOD.as_bytes()));
    assert_eq!(p.sha256.len(), 64);
}

#[test]
fn an_empty_file_is_a_policy_of_defaults_named_after_the_file() {
    let l = load_policy("/etc/infrawatch/site-3.toml", "", &vocab());
    let p = l.config.unwrap();
    assert_eq!(p.name, "site-3");
    assert_eq!(p.mode, Mode::Monitor);
    assert_eq!(p.learning, Learning::default());
    assert_eq!(p.detectors, Detectors::default());
    assert!(p.zones.is_empty() && p.assets.is_empty() && p.allow.is_empty());
    assert_eq!(
        p.sha256,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn sha256_is_lower_hex_of_the_bytes() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn unknown_section_suggests_the_nearest() {
    assert_error(
        "[polcy]\nname = \"x\"\n",
        "policy.toml:1:2: error: unknown section `[polcy]`",
        Some("did you mean `policy`?"),
    );
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let text = format!(
        "{BASE}[[allow]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\nsilence_afer = \"30s\"\n"
    );
    assert_error(
        &text,
        "policy.toml:12:1: error: unknown key `silence_afer` in [[allow]] `r`",
        Some("did you mean `silence_after`?"),
    );
}

#[test]
fn unknown_key_without_a_near_one_lists_the_valid_keys() {
    assert_error(
        "[policy]\nname = \"x\"\nowner = \"ops\"\n",
        "policy.toml:3:1: error: unknown key `owner` in [policy]",
        Some("valid: `name`, `mode`"),
    );
}

#[test]
fn wrong_type_is_reported_at_the_value() {
    let text =
        format!("{BASE}[[allow]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\nports = \"502\"\n");
    assert_error(
        &text,
        "policy.toml:12:9: error: [[allow]] `r`: wrong type: string \"502\", expected a sequence",
        None,
    );
}

#[test]
fn zone_with_host_bits_set_gives_the_network() {
    assert_error(
        "[zones]\ncontrol = [\"10.10.0.5/24\"]\n",
        "policy.toml:2:12: error: `10.10.0.5/24` has host bits set",
        Some("did you mean `10.10.0.0/24`?"),
    );
}

#[test]
fn bad_prefix_and_bad_address_in_a_zone() {
    assert_error(
        "[zones]\ncontrol = [\"10.10.0.0/33\"]\n",
        "policy.toml:2:12: error: `/33` is not a prefix length",
        Some("an IPv4 prefix is 0 to 32"),
    );
    assert_error(
        "[zones]\ncontrol = [\"10.10.0/24\"]\n",
        "policy.toml:2:12: error: `10.10.0` is not an IP address",
        Some("ADDRESS/PREFIX"),
    );
}

#[test]
fn a_zone_is_a_list() {
    assert_error(
        "[zones]\ncontrol = \"10.10.0.0/24\"\n",
        "policy.toml:2:11: error: zone `control` must be a list of networks",
        Some("write control = [\"10.10.0.0/24\"]"),
    );
}

#[test]
fn an_empty_zone_is_a_warning() {
    let l = load("[zones]\ncontrol = []\n");
    assert_eq!(l.error_count(), 0);
    assert!(l.config.is_some());
    assert!(
        l.render().contains(
            "policy.toml:2:1: warning: zone `control` lists no networks; it matches nothing"
        ),
        "{}",
        l.render()
    );
}

#[test]
fn bad_asset_ip() {
    assert_error(
        "[[assets]]\nname = \"plc-1\"\nip = \"10.10.0.300\"\n",
        "policy.toml:3:6: error: `10.10.0.300` is not an IP address",
        Some("write one IPv4 or IPv6 address"),
    );
    assert_error(
        "[[assets]]\nname = \"plc-1\"\nip = \"10.10.0.0/24\"\n",
        "policy.toml:3:6: error: `10.10.0.0/24` is not an IP address",
        Some("networks belong in [zones]"),
    );
}

#[test]
fn bad_asset_mac() {
    assert_error(
        "[[assets]]\nname = \"plc-1\"\nmac = \"00:1d:9c:aa:bb\"\n",
        "policy.toml:3:7: error: `00:1d:9c:aa:bb` is not a MAC address",
        Some("six hex bytes"),
    );
}

#[test]
fn asset_needs_an_address() {
    assert_error(
        "[[assets]]\nname = \"plc-1\"\ndescription = \"pump PLC\"\n",
        "policy.toml:2:8: error: asset `plc-1` has neither `ip` nor `mac`",
        Some("ip = \"10.10.0.5\" and/or mac ="),
    );
}

#[test]
fn asset_in_no_zone_is_fine() {
    let l =
        load("[zones]\nc = [\"10.10.0.0/24\"]\n[[assets]]\nname = \"x\"\nip = \"192.168.9.9\"\n");
    assert!(l.diagnostics.is_empty(), "{}", l.render());
    assert!(l.config.is_some());
}

fn rule(body: &str) -> String {
    format!("{BASE}[[allow]]\nname = \"r\"\n{body}")
}

#[test]
fn reference_to_a_missing_zone_suggests_the_nearest() {
    assert_error(
        &rule("from = \"zone:scda\"\nto = \"any\"\n"),
        "policy.toml:10:8: error: no zone named `scda`",
        Some("did you mean `zone:scada`?"),
    );
}

#[test]
fn reference_to_a_missing_asset_suggests_the_nearest() {
    assert_error(
        &rule("from = \"any\"\nto = \"asset:plc1\"\n"),
        "policy.toml:11:6: error: no asset named `plc1`",
        Some("did you mean `asset:plc-1`?"),
    );
}

#[test]
fn a_bare_zone_name_is_not_an_endpoint() {
    assert_error(
        &rule("from = \"scada\"\nto = \"any\"\n"),
        "policy.toml:10:8: error: `scada` is not an endpoint",
        Some("did you mean `zone:scada`?"),
    );
}

#[test]
fn a_misspelt_endpoint_prefix() {
    assert_error(
        &rule("from = \"Zone:scada\"\nto = \"any\"\n"),
        "policy.toml:10:8: error: `Zone:scada` is not an endpoint",
        Some("did you mean `zone:scada`?"),
    );
    assert_error(
        &rule("from = \"any\"\nto = \"assets:plc-1\"\n"),
        "policy.toml:11:6: error: `assets:plc-1` is not an endpoint",
        Some("did you mean `asset:plc-1`?"),
    );
    assert_error(
        &rule("from = \"everything\"\nto = \"any\"\n"),
        "policy.toml:10:8: error: `everything` is not an endpoint",
        Some("write `zone:NAME`, `asset:NAME`"),
    );
    // IPv6 networks and hosts are endpoints.
    let l = load(&rule("from = \"fd00::/8\"\nto = \"fd00::1\"\n"));
    assert!(l.diagnostics.is_empty(), "{}", l.render());
}

#[test]
fn endpoint_network_with_host_bits() {
    assert_error(
        &rule("from = \"10.20.0.1/16\"\nto = \"any\"\n"),
        "policy.toml:10:8: error: `10.20.0.1/16` has host bits set",
        Some("did you mean `10.20.0.0/16`?"),
    );
}

#[test]
fn a_rule_needs_from_and_to() {
    assert_error(
        &rule("to = \"any\"\n"),
        "policy.toml:8:1: error: [[allow]] `r` has no `from`",
        Some("from = \"zone:scada\""),
    );
}

#[test]
fn misspelt_protocol_suggests_the_nearest() {
    assert_error(
        &rule("from = \"any\"\nto = \"any\"\nprotocol = \"modbsu\"\n"),
        "policy.toml:12:12: error: unknown protocol `modbsu`",
        Some("did you mean `modbus`?"),
    );
}

#[test]
fn misspelt_command_suggests_the_nearest_of_that_protocol() {
    assert_error(
        &rule(
            "from = \"any\"\nto = \"any\"\nprotocol = \"modbus\"\nfunctions = [\"read_coils\", \"read_holding_register\"]\n",
        ),
        "policy.toml:13:28: error: `modbus` has no command `read_holding_register`",
        Some("did you mean `read_holding_registers`?"),
    );
    // A command of another protocol is not offered.
    assert_error(
        &rule("from = \"any\"\nto = \"any\"\nprotocol = \"dnp3\"\nfunctions = [\"read_coils\"]\n"),
        "policy.toml:13:14: error: `dnp3` has no command `read_coils`",
        Some("`dnp3` commands: `read`, `select`"),
    );
}

#[test]
fn functions_need_a_protocol_with_commands() {
    assert_error(
        &rule("from = \"any\"\nto = \"any\"\nfunctions = [\"plc_stop\"]\n"),
        "policy.toml:12:13: error: `functions` needs a `protocol`",
        Some("these are `s7comm` commands: add protocol = \"s7comm\""),
    );
    assert_error(
        &rule("from = \"any\"\nto = \"any\"\nprotocol = \"dns\"\nfunctions = [\"query\"]\n"),
        "policy.toml:13:13: error: protocol `dns` has no commands to list in `functions`",
        Some("remove `functions`"),
    );
}

#[test]
fn unit_ids_only_for_modbus_dnp3_iec104_and_in_range() {
    assert_error(
        &rule("from = \"any\"\nto = \"any\"\nprotocol = \"s7comm\"\nunit_ids = [1]\n"),
        "policy.toml:13:12: error: `unit_ids` do not apply to `s7comm`",
        Some("remove it"),
    );
    assert_error(
        &rule("from = \"any\"\nto = \"any\"\nprotocol = \"modbus\"\nunit_ids = [1, 256]\n"),
        "policy.toml:13:16: error: unit id 256 is out of range for `modbus`",
        Some("use 0 to 255"),
    );
    let l = load(&rule(
        "from = \"any\"\nto = \"any\"\nprotocol = \"dnp3\"\nunit_ids = [1024]\n",
    ));
    assert_eq!(l.error_count(), 0, "{}", l.render());
}

#[test]
fn registers_and_coils_only_for_modbus() {
    assert_error(
        &rule("from = \"any\"\nto = \"any\"\nprotocol = \"dnp3\"\nregisters = [\"0-9\"]\n"),
        "policy.toml:13:13: error: `registers` apply to Modbus only, not `dnp3`",
        Some("remove `registers`"),
    );
    assert_error(
        &rule("from = \"any\"\nto = \"any\"\ncoils = [1]\n"),
        "policy.toml:12:9: error: `coils` needs protocol = \"modbus\"",
        Some("add protocol = \"modbus\""),
    );
}

#[test]
fn bad_address_ranges() {
    let r = |regs: &str| {
        rule(&format!(
            "from = \"any\"\nto = \"any\"\nprotocol = \"modbus\"\nregisters = [{regs}]\n"
        ))
    };
    assert_error(
        &r("\"99-0\""),
        "policy.toml:13:14: error: `99-0`: the first address is greater than the last",
        Some("write \"0-99\""),
    );
    assert_error(
        &r("\"0-70000\""),
        "policy.toml:13:14: error: `0-70000` is outside the wire address range 0-65535",
        Some("wire (0-based) addresses, 0 to 65535"),
    );
    assert_error(
        &r("\"ten\""),
        "policy.toml:13:14: error: `ten` is not an address range",
        Some("write \"0-99\", \"7\" or 7"),
    );
    assert_error(
        &r("-1"),
        "policy.toml:13:14: error: `-1` is outside the wire address range 0-65535",
        None,
    );
    assert_error(
        &r("true"),
        "policy.toml:13:14: error: `registers` entries must be strings such as \"0-99\" or integers, not a boolean",
        None,
    );
    // Six-digit Modicon numbers do not fit a wire address: the help says what to write.
    assert_error(
        &r("400001"),
        "policy.toml:13:14: error: `400001` is outside the wire address range 0-65535",
        Some("wire addresses are 0-based: 400001 is holding register 0 (write 0)"),
    );
}

#[test]
fn modicon_addresses_are_warnings_with_the_wire_address() {
    let text = rule(
        "from = \"any\"\nto = \"any\"\nprotocol = \"modbus\"\nregisters = [40001, \"40001-40010\", \"30001\"]\ncoils = [\"10001\"]\n",
    );
    let l = load(&text);
    let out = l.render();
    assert_eq!(l.error_count(), 0, "{out}");
    assert!(l.config.is_some());
    assert!(
        out.contains(
            "policy.toml:13:14: warning: `40001` looks like a Modicon register number, not a wire address\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("help: wire addresses are 0-based: 40001 is holding register 0 (write 0)\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "help: wire addresses are 0-based: 40001 is holding register 0 (write \"0-9\")\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("help: wire addresses are 0-based: 30001 is input register 0 (write 0)\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "policy.toml:14:10: warning: `10001` looks like a Modicon discrete input number"
        ),
        "{out}"
    );
    assert!(
        out.contains("help: wire addresses are 0-based: 10001 is discrete input 0 (write 0)\n"),
        "{out}"
    );
    // Plain wire addresses above the Modicon ranges are not warned about.
    let l = load(&rule(
        "from = \"any\"\nto = \"any\"\nprotocol = \"modbus\"\nregisters = [\"50000-65535\"]\n",
    ));
    assert!(l.diagnostics.is_empty(), "{}", l.render());
}

#[test]
fn duplicate_zone_points_at_the_second_and_names_the_first_line() {
    assert_error(
        "[zones]\ncontrol = [\"10.10.0.0/24\"]\nscada = [\"10.20.0.0/24\"]\ncontrol = [\"10.11.0.0/24\"]\n",
        "policy.toml:4:1: error: zone `control` is defined twice",
        Some("the first `control` is on line 2"),
    );
}

#[test]
fn duplicate_asset_rule_and_window_names() {
    assert_error(
        &format!("{BASE}[[assets]]\nname = \"plc-1\"\nip = \"10.10.0.6\"\n"),
        "policy.toml:9:8: error: duplicate asset name `plc-1`",
        Some("the first asset named `plc-1` is on line 6"),
    );
    assert_error(
        &rule(
            "from = \"any\"\nto = \"any\"\n[[allow]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\n",
        ),
        "policy.toml:13:8: error: duplicate rule name `r`",
        Some("the first rule named `r` is on line 9"),
    );
    assert_error(
        "[[maintenance]]\nname = \"fw\"\nfrom = \"any\"\nstart = \"2026-12-01T02:00:00Z\"\nend = \"2026-12-01T04:00:00Z\"\n\
         [[maintenance]]\nname = \"fw\"\nfrom = \"any\"\nstart = \"2026-12-02T02:00:00Z\"\nend = \"2026-12-02T04:00:00Z\"\n",
        "policy.toml:7:8: error: duplicate maintenance window name `fw`",
        Some("is on line 2"),
    );
}

#[test]
fn a_rule_needs_a_name() {
    assert_error(
        &format!("{BASE}[[allow]]\nfrom = \"any\"\nto = \"any\"\n"),
        "policy.toml:8:1: error: this rule has no `name`",
        Some("add name = \"hmi polls plcs\""),
    );
}

#[test]
fn maintenance_end_must_follow_start() {
    assert_error(
        "[[maintenance]]\nname = \"fw\"\nfrom = \"any\"\nstart = \"2026-12-01T04:00:00Z\"\nend = 2026-12-01T04:00:00Z\n",
        "policy.toml:5:7: error: maintenance window `fw` ends before it starts",
        Some("`end` must be later than `start` (line 4)"),
    );
}

#[test]
fn maintenance_times_need_a_time_zone_and_a_real_date() {
    assert_error(
        "[[maintenance]]\nname = \"fw\"\nfrom = \"any\"\nstart = 2026-12-01T02:00:00\nend = \"2026-12-01T04:00:00Z\"\n",
        "policy.toml:4:9: error: `2026-12-01T02:00:00` is not a point in time: it needs a date, a time and a time zone",
        Some("\"2026-12-01T02:00:00Z\" (Z is UTC)"),
    );
    assert_error(
        "[[maintenance]]\nname = \"fw\"\nfrom = \"any\"\nstart = \"2026-12-01 02:00\"\nend = \"2026-02-30T04:00:00Z\"\n",
        "policy.toml:4:9: error: `2026-12-01 02:00` is not an RFC 3339 date and time",
        Some("RFC 3339"),
    );
    assert_error(
        "[[maintenance]]\nname = \"fw\"\nfrom = \"any\"\nstart = \"2026-12-01T02:00:00Z\"\nend = \"2026-02-30T04:00:00Z\"\n",
        "policy.toml:5:7: error: `2026-02-30T04:00:00Z`: 2026-02 has no day 30",
        None,
    );
    assert_error(
        "[[maintenance]]\nname = \"fw\"\nstart = \"2026-12-01T02:00:00Z\"\n",
        "policy.toml:1:1: error: [[maintenance]] `fw` has no `from`",
        Some("from = \"asset:eng-ws\""),
    );
}

#[test]
fn bad_durations() {
    assert_error(
        "[learning]\nduration = \"7 parsecs\"\n",
        "policy.toml:2:12: error: `duration`: `parsecs` is not a duration unit",
        Some("write a number with a unit"),
    );
    assert_error(
        &rule("from = \"any\"\nto = \"any\"\nsilence_after = 30\n"),
        "policy.toml:12:17: error: `silence_after`: a duration needs a unit",
        Some("write \"30s\" for 30 seconds"),
    );
    assert_error(
        "[detectors.port_scan]\nwindow = \"10ms\"\n",
        "policy.toml:2:10: error: `window` must be at least 100ms",
        None,
    );
}

#[test]
fn unknown_severity_mode_and_then() {
    assert_error(
        &rule("from = \"any\"\nto = \"any\"\nseverity = \"crit\"\n"),
        "policy.toml:12:12: error: unknown severity `crit`",
        Some("did you mean `critical`?"),
    );
    assert_error(
        "[policy]\nname = \"x\"\nmode = \"enforce\"\n",
        "policy.toml:3:8: error: unknown mode `enforce`",
        Some("valid: `monitor`, `learn`"),
    );
    assert_error(
        "[policy]\nmode = \"learning\"\n",
        "policy.toml:2:8: error: unknown mode `learning`",
        Some("did you mean `learn`?"),
    );
    assert_error(
        "[learning]\nthen = \"monitr\"\n",
        "policy.toml:2:8: error: unknown `then` value `monitr`",
        Some("did you mean `monitor`?"),
    );
    assert_error(
        "[detectors.arp_spoof]\nseverity = \"high\"\n",
        "policy.toml:2:12: error: unknown severity `high`",
        Some("valid: `critical`, `warning`, `info`"),
    );
}

#[test]
fn detector_kinds_and_keys_are_checked() {
    assert_error(
        "[detectors.portscan]\nenabled = false\n",
        "policy.toml:1:12: error: unknown detector `[detectors.portscan]`",
        Some("did you mean `port_scan`?"),
    );
    assert_error(
        "[detectors.port_scan]\ndistinct_port = 5\n",
        "policy.toml:2:1: error: unknown key `distinct_port` in [detectors.port_scan]",
        Some("did you mean `distinct_ports`?"),
    );
    assert_error(
        "[detectors.syn_flood]\nhalf_open = 0\n",
        "policy.toml:2:13: error: `half_open` must be a whole number from 1 to 4294967295",
        None,
    );
    assert_error(
        "[detectors.rate_anomaly]\nalpha = 1.5\n",
        "policy.toml:2:9: error: `alpha` must be greater than 0 and at most 1",
        None,
    );
}

#[test]
fn single_bracket_array_sections_are_explained() {
    assert_error(
        "[allow]\nname = \"r\"\n",
        "policy.toml:1:1: error: `[allow]` must be written `[[allow]]`",
        Some("two brackets"),
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let text = "[policy]\nmode = \"learning\"\n[zones]\nc = [\"10.0.0.1/8\"]\n[[assets]]\nname = \"a\"\n\
                [[allow]]\nname = \"r\"\nfrom = \"zone:d\"\nto = \"asset:b\"\nprotocol = \"modbus\"\n\
                functions = [\"read\"]\nseverity = \"loud\"\n[detectors.silence]\nenabled = \"yes\"\n";
    let l = load(text);
    assert!(l.config.is_none());
    // mode, host bits, no address, zone, asset, command, severity, enabled type.
    assert_eq!(l.error_count(), 8, "{}", l.render());
}

#[test]
fn syntax_errors_do_not_hide_the_others() {
    let l = load("[policy\nname = \"x\"\n[zones]\nc = [\"10.0.0.1/8\"]\n");
    let out = l.render();
    assert!(out.contains("policy.toml:1:"), "{out}");
    assert!(l.error_count() >= 1, "{out}");
}

#[test]
fn unreadable_file() {
    let l = load_policy_file(Path::new("/nonexistent/policy.toml"), &vocab());
    assert!(l.config.is_none());
    assert!(
        l.render()
            .starts_with("/nonexistent/policy.toml: error: cannot read the file"),
        "{}",
        l.render()
    );
}

#[test]
fn rfc3339_times() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
    assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Ok(951_868_800));
    assert_eq!(parse_rfc3339("2024-02-29T12:00:00.250Z"), Ok(1_709_208_000));
    assert_eq!(
        parse_rfc3339("2026-12-01T03:00:00+01:00"),
        Ok(1_796_090_400)
    );
    assert_eq!(
        parse_rfc3339("2026-11-30t21:00:00-05:00"),
        Ok(1_796_090_400)
    );
    assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Ok(-1));
    assert!(parse_rfc3339("2023-02-29T00:00:00Z").is_err());
    assert!(parse_rfc3339("2026-12-01T02:00:00").is_err());
    assert!(parse_rfc3339("2026-12-01T24:00:00Z").is_err());
    assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_err());
    assert!(parse_rfc3339("2026-12-01T02:00:00+1:00").is_err());
    assert!(parse_rfc3339("2026-12-01T02:00:00Zjunk").is_err());
    assert!(parse_rfc3339("").is_err());
}

proptest::proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let l = load(&text);
        let _ = l.render();
    }

    #[test]
    fn never_panics_on_policy_shaped_text(
        lines in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("[zones]".to_string()),
                proptest::strategy::Just("[[allow]]".to_string()),
                proptest::strategy::Just("[[assets]]".to_string()),
                proptest::strategy::Just("[[maintenance]]".to_string()),
                proptest::strategy::Just("[detectors.port_scan]".to_string()),
                "[a-z_]{1,12} = \"[a-z0-9:./ -]{0,20}\"",
                "[a-z_]{1,12} = [0-9-]{1,8}",
                "[a-z_]{1,12} = \\[\"[a-z0-9:./-]{0,20}\", [0-9]{1,6}\\]",
                "(start|end) = [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?",
            ],
            0..20,
        )
    ) {
        let l = load(&lines.join("\n"));
        let _ = l.render();
    }
}

#[test]
fn deep_nesting_does_not_overflow() {
    for depth in [100usize, 10_000] {
        let text = format!("[zones]\nc = {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let l = load(&text);
        assert!(l.config.is_none());
        let _ = l.render();
    }
}
