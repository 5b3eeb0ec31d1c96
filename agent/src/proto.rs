//! The fixed set of protocol ids of DESIGN.md ("Classification"). Every frame is counted
//! under exactly one of them; they are metric label values, so the set is closed.

use std::fmt;

macro_rules! protos {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// A protocol id. `repr(u8)`, dense from 0: usable as an array index.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Proto { $($variant),* }

        impl Proto {
            /// Every id, in declaration order.
            pub const ALL: &'static [Proto] = &[$(Proto::$variant),*];
            /// Number of ids.
            pub const COUNT: usize = Proto::ALL.len();

            /// The id as it appears in metrics and JSON.
            pub const fn name(self) -> &'static str {
                match self { $(Proto::$variant => $name),* }
            }

            /// Looks an id up by its name.
            pub fn from_name(name: &str) -> Option<Proto> {
                match name { $($name => Some(Proto::$variant),)* _ => None }
            }
        }
    };
}

protos! {
    Arp => "arp",
    Lldp => "lldp",
    Stp => "stp",
    Goose => "goose",
    Sv => "sv",
    Profinet => "profinet",
    OtherL2 => "other-l2",
    Icmp => "icmp",
    Icmpv6 => "icmpv6",
    Igmp => "igmp",
    OtherIp => "other-ip",
    Modbus => "modbus",
    Dnp3 => "dnp3",
    Iec104 => "iec104",
    S7comm => "s7comm",
    S7commplus => "s7commplus",
    Mms => "mms",
    Enip => "enip",
    Bacnet => "bacnet",
    Opcua => "opcua",
    Mqtt => "mqtt",
    Dns => "dns",
    Mdns => "mdns",
    Llmnr => "llmnr",
    Netbios => "netbios",
    Http => "http",
    Tls => "tls",
    Ssh => "ssh",
    Ntp => "ntp",
    Snmp => "snmp",
    Dhcp => "dhcp",
    Smb => "smb",
    Rdp => "rdp",
    Telnet => "telnet",
    Ftp => "ftp",
    Syslog => "syslog",
    OtherTcp => "other-tcp",
    OtherUdp => "other-udp",
    Malformed => "malformed",
}

impl Proto {
    /// Array index of this id.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Industrial protocols: decoded to the command.
    pub const fn is_ics(self) -> bool {
        matches!(
            self,
            Proto::Modbus
                | Proto::Dnp3
                | Proto::Iec104
                | Proto::S7comm
                | Proto::S7commplus
                | Proto::Mms
                | Proto::Enip
                | Proto::Bacnet
                | Proto::Opcua
                | Proto::Goose
                | Proto::Sv
                | Proto::Profinet
                | Proto::Mqtt
        )
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_indices_are_dense() {
        for (i, p) in Proto::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
            assert_eq!(Proto::from_name(p.name()), Some(*p));
        }
        assert_eq!(Proto::from_name("modbus"), Some(Proto::Modbus));
        assert_eq!(Proto::from_name("Modbus"), None);
    }
}
