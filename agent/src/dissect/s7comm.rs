//! S7comm (S7-300/400, protocol id 0x32) and S7comm-plus (S7-1200/1500, protocol id 0x72)
//! over COTP DT user data (see [`super::tpkt`]).
//!
//! Siemens publishes neither protocol; the layouts here follow the public reverse-engineered
//! descriptions, read for reference only (no code taken):
//! - S7comm header (10 bytes, 12 for ROSCTR 2/3): protocol id 0x32, ROSCTR (1 job, 2 ack,
//!   3 ack-data, 7 user data), redundancy id, PDU reference, parameter length, data
//!   length, and for ack/ack-data the error class and code — Wireshark `packet-s7comm.c`
//!   (Thomas Wiens) header comments; function codes as in cisagov/icsnpp-s7comm
//!   `scripts/consts.zeek` (`s7comm_functions`, `s7comm_userdata_functions` and the
//!   per-group sub-function tables).
//! - Job parameters: read/write var item lists (0x12, spec length, syntax id…), PI service
//!   (0x28, `P_PROGRAM`, `_INSE`, …) and PLC stop (0x29) with their string length fields.
//! - User data parameter: head 00 01 12, length (4 or 8), method (0x11 request, 0x12
//!   response), type (high nibble: 0 push, 4 request, 8 response; 3/7/B the NC variants)
//!   and function group (low nibble), sub-function, sequence number, and in the 8-byte form
//!   data unit reference, last-data-unit and an error code. The data part starts with a
//!   return code (0xFF success) — Wireshark `packet-s7comm.c`, "userdata" sections.
//! - SZL (System-Zustandsliste, Siemens "System Software for S7-300/400 System and Standard
//!   Functions", chapter 34): SZL-ID, index, LENTHDR, N_DR, then N_DR records. SZL-ID
//!   0x0011 "module identification" records (index, MLFB order number 20 chars, BGTyp,
//!   Ausbg, Ausbe; index 7 holds the firmware as 'V' major minor patch) and 0x001C
//!   "component identification" (index, 32 bytes: 1 PLC name, 2 module name, 3 plant
//!   id, 4 copyright, 5 serial number, 7 module type name, 8 memory card serial).
//! - S7comm-plus: header 0x72, protocol version (1, 2, 3; 0xFE extended keep-alive, 0xFF
//!   keep-alive), data length, data part, trailer (0x72, version, 0x0000); a PDU
//!   fragmented over several packets has the trailer only in the last. The data part
//!   starts with opcode (0x31 request, 0x32 response, 0x33 notification, 0x02 response2),
//!   two reserved bytes and the 16-bit function code; version 3 puts an integrity part
//!   (digest length 0x20 and a 32-byte digest) first. Function codes from Wireshark's
//!   `packet-s7comm_plus.c` and thomas-v2/S7CommPlusDriver `Functioncode`.
//!
//! Guarantees: no panics, no indexing on wire bytes, no allocation (the firmware string of
//! an SZL answer is formatted in a stack buffer). Each call reports exactly one [`Pdu`].

use super::{Identity, Pdu, PduKind, PduSink, Probe, Reader, Side, Violation, be16, byte};
use crate::command::Cmd;
use crate::proto::Proto;

/// S7comm protocol id.
pub const S7_PROTOCOL_ID: u8 = 0x32;
/// S7comm-plus protocol id.
pub const S7PLUS_PROTOCOL_ID: u8 = 0x72;

/// ROSCTR values (header byte 1).
pub mod rosctr {
    pub const JOB: u8 = 1;
    pub const ACK: u8 = 2;
    pub const ACK_DATA: u8 = 3;
    pub const USERDATA: u8 = 7;
}

/// Length of the S7comm header for a ROSCTR, `None` for an undefined ROSCTR.
pub fn header_len(rosctr: u8) -> Option<usize> {
    match rosctr {
        rosctr::JOB | rosctr::USERDATA => Some(10),
        rosctr::ACK | rosctr::ACK_DATA => Some(12),
        _ => None,
    }
}

/// Job function (parameter byte 0) to command.
pub fn job_cmd(function: u8) -> Option<Cmd> {
    Some(match function {
        0x00 => Cmd::S7CpuServices,
        0x04 => Cmd::S7ReadVar,
        0x05 => Cmd::S7WriteVar,
        0x1A => Cmd::S7RequestDownload,
        0x1B => Cmd::S7DownloadBlock,
        0x1C => Cmd::S7DownloadEnded,
        0x1D => Cmd::S7StartUpload,
        0x1E => Cmd::S7Upload,
        0x1F => Cmd::S7EndUpload,
        0x28 => Cmd::S7PlcControl,
        0x29 => Cmd::S7PlcStop,
        0xF0 => Cmd::S7SetupCommunication,
        _ => return None,
    })
}

/// User-data function group and sub-function to command.
pub fn userdata_cmd(group: u8, subfunction: u8) -> Option<Cmd> {
    Some(match group {
        0x0 => Cmd::S7ModeTransition,
        // Programmer commands: the TIS sub-functions 8 (modify variable) and 9 (force)
        // write process values, 0x0C is the memory reset.
        0x1 => match subfunction {
            0x08 | 0x09 => Cmd::S7ForceVariable,
            0x0C => Cmd::S7MemoryReset,
            _ => Cmd::S7ProgrammerCommand,
        },
        0x2 => Cmd::S7CyclicData,
        0x3 => Cmd::S7BlockFunctions,
        0x4 => match subfunction {
            0x01 => Cmd::S7ReadSzl,
            0x02 => Cmd::S7MessageService,
            _ => Cmd::S7CpuFunction,
        },
        0x5 => Cmd::S7Password,
        0x6 => Cmd::S7Bsend,
        0x7 => match subfunction {
            0x01 | 0x03 => Cmd::S7ReadClock,
            0x02 | 0x04 => Cmd::S7SetClock,
            _ => return None,
        },
        0xF => Cmd::S7NcProgramming,
        _ => return None,
    })
}

/// S7comm-plus function code to command.
pub fn s7plus_cmd(function: u16) -> Option<Cmd> {
    Some(match function {
        0x04B1 | 0x05A9 => Cmd::S7pError,
        0x04BB => Cmd::S7pExplore,
        0x04CA => Cmd::S7pCreateObject,
        0x04D4 => Cmd::S7pDeleteObject,
        0x04F2 => Cmd::S7pSetVariable,
        0x04FC => Cmd::S7pGetVariable,
        0x0506 => Cmd::S7pAddLink,
        0x051A => Cmd::S7pRemoveLink,
        0x0524 => Cmd::S7pGetLink,
        0x0542 => Cmd::S7pSetMultiVariables,
        0x054C => Cmd::S7pGetMultiVariables,
        0x0556 => Cmd::S7pBeginSequence,
        0x0560 => Cmd::S7pEndSequence,
        0x056B => Cmd::S7pInvoke,
        0x057C => Cmd::S7pSetVarSubStreamed,
        0x0586 => Cmd::S7pGetVarSubStreamed,
        0x0590 => Cmd::S7pGetVariablesAddress,
        0x059A => Cmd::S7pAbort,
        0x05B3 => Cmd::S7pInitSsl,
        _ => return None,
    })
}

/// A checked view of an S7comm header: after [`S7Header::parse`] the parameter and data
/// slices are within the PDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S7Header<'a> {
    pub rosctr: u8,
    pub pdu_ref: u16,
    pub param_len: u16,
    pub data_len: u16,
    /// Error class and code (ack and ack-data only).
    pub error_class: u8,
    pub error_code: u8,
    /// The parameter bytes held (fewer than `param_len` when truncated).
    pub param: &'a [u8],
    /// The data bytes held.
    pub data: &'a [u8],
    /// The declared lengths disagree with the PDU's size.
    pub bad_length: bool,
}

/// Why an S7comm header did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Not protocol id 0x32, or an undefined ROSCTR.
    Bad,
    /// The PDU ends inside the header.
    Short,
}

impl<'a> S7Header<'a> {
    /// Parses the header of `pdu`; `truncated`: more of the PDU exists than `pdu` holds.
    pub fn parse(pdu: &'a [u8], truncated: bool) -> Result<S7Header<'a>, HeaderError> {
        let mut r = Reader::new(pdu);
        if r.u8().ok_or(HeaderError::Short)? != S7_PROTOCOL_ID {
            return Err(HeaderError::Bad);
        }
        let rosctr = r.u8().ok_or(HeaderError::Short)?;
        let hlen = header_len(rosctr).ok_or(HeaderError::Bad)?;
        let _redundancy = r.u16_be().ok_or(HeaderError::Short)?;
        let pdu_ref = r.u16_be().ok_or(HeaderError::Short)?;
        let param_len = r.u16_be().ok_or(HeaderError::Short)?;
        let data_len = r.u16_be().ok_or(HeaderError::Short)?;
        let (error_class, error_code) = if hlen == 12 {
            (
                r.u8().ok_or(HeaderError::Short)?,
                r.u8().ok_or(HeaderError::Short)?,
            )
        } else {
            (0, 0)
        };
        let declared = hlen + usize::from(param_len) + usize::from(data_len);
        let bad_length = if truncated {
            declared < pdu.len()
        } else {
            declared != pdu.len()
        };
        let param = r
            .take(usize::from(param_len).min(r.remaining()))
            .unwrap_or(&[]);
        let data = r
            .take(usize::from(data_len).min(r.remaining()))
            .unwrap_or(&[]);
        Ok(S7Header {
            rosctr,
            pdu_ref,
            param_len,
            data_len,
            error_class,
            error_code,
            param,
            data,
            bad_length,
        })
    }

    pub fn is_error(&self) -> bool {
        self.error_class != 0 || self.error_code != 0
    }
}

/// Classifier test for S7comm: protocol id, a defined ROSCTR and lengths that fit the
/// message (exactly when `complete`, the whole PDU is at hand).
pub fn probe_s7(pdu: &[u8], complete: bool) -> Probe {
    match S7Header::parse(pdu, !complete) {
        Err(HeaderError::Bad) => Probe::No,
        Err(HeaderError::Short) => {
            if complete {
                Probe::No
            } else {
                Probe::Unsure
            }
        }
        Ok(h) if h.bad_length => Probe::No,
        Ok(h) => {
            let plen = usize::from(h.param_len);
            match h.rosctr {
                // A job names its function in the parameter.
                rosctr::JOB if plen == 0 => Probe::No,
                // User data parameters start with 00 01 12 and are 8 or 12 bytes long.
                rosctr::USERDATA => {
                    if plen < USERDATA_MIN_PARAM {
                        return Probe::No;
                    }
                    match h.param.get(..3) {
                        Some(head) if head != USERDATA_HEAD => Probe::No,
                        Some(_) => Probe::Match,
                        None if complete => Probe::No,
                        None => Probe::Unsure,
                    }
                }
                _ => Probe::Match,
            }
        }
    }
}

const USERDATA_HEAD: &[u8] = &[0x00, 0x01, 0x12];
/// Head, length, method, type/group, sub-function, sequence number.
const USERDATA_MIN_PARAM: usize = 8;

/// Dissects one S7comm PDU (the COTP DT user data). `truncated`: the PDU goes on beyond
/// `pdu` (COTP segmentation, or a message longer than the reassembly block).
pub fn dissect_s7(pdu: &[u8], side: Side, truncated: bool, sink: &mut dyn PduSink) {
    let kind = decode_s7(pdu, side, truncated, sink);
    sink.pdu(side, &Pdu::new(Proto::S7comm, kind));
}

fn decode_s7(pdu: &[u8], side: Side, truncated: bool, sink: &mut dyn PduSink) -> PduKind {
    let h = match S7Header::parse(pdu, truncated) {
        Ok(h) => h,
        // A segment too short to hold the header: nothing to say, nothing wrong.
        Err(HeaderError::Short) if truncated => return PduKind::Message,
        Err(_) => {
            sink.violation(Violation::S7BadHeader);
            return PduKind::Message;
        }
    };
    if h.bad_length {
        // Still decode what is there: a stop command with a wrong length is still a stop.
        sink.violation(Violation::S7BadHeader);
    }
    let param_complete = h.param.len() == usize::from(h.param_len);
    match h.rosctr {
        rosctr::JOB => {
            let Some(&function) = h.param.first() else {
                if !truncated || h.param_len == 0 {
                    sink.violation(Violation::S7BadParameter);
                }
                return PduKind::Message;
            };
            let Some(cmd) = job_cmd(function) else {
                sink.violation(Violation::S7UnknownFunction);
                return PduKind::Request(Cmd::S7Unknown);
            };
            if param_complete && !job_param_ok(function, h.param) {
                sink.violation(Violation::S7BadParameter);
            }
            PduKind::Request(cmd)
        }
        rosctr::ACK | rosctr::ACK_DATA => {
            let cmd = match h.param.first() {
                Some(&f) => match job_cmd(f) {
                    Some(c) => Some(c),
                    None => {
                        sink.violation(Violation::S7UnknownFunction);
                        Some(Cmd::S7Unknown)
                    }
                },
                None => None,
            };
            match (h.is_error(), cmd) {
                (true, c) => PduKind::Exception(c.unwrap_or(Cmd::S7Unknown)),
                (false, Some(c)) => PduKind::Response(c),
                // A bare acknowledgement.
                (false, None) if h.rosctr == rosctr::ACK => PduKind::Message,
                (false, None) => PduKind::Response(Cmd::S7Unknown),
            }
        }
        // The user-data parameter is cut by COTP segmentation: nothing to decode yet.
        _ if !param_complete && truncated && h.param.len() < USERDATA_MIN_PARAM => PduKind::Message,
        _ => decode_userdata(&h, side, sink),
    }
}

/// Structural checks of job parameters whose layout is fixed by their function.
fn job_param_ok(function: u8, param: &[u8]) -> bool {
    match function {
        // Read/write var: function, item count, then items (0x12, spec length, spec).
        0x04 | 0x05 => {
            let mut r = Reader::new(param);
            let _ = r.u8();
            let Some(count) = r.u8() else { return false };
            for _ in 0..count {
                if r.u8() != Some(0x12) {
                    return false;
                }
                let Some(len) = r.u8() else { return false };
                if r.skip(usize::from(len)).is_none() {
                    return false;
                }
            }
            count > 0 && r.is_empty()
        }
        // Setup communication: function, reserved, max AmQ calling/called, PDU length.
        0xF0 => param.len() == 8,
        // PI service: function, 7 bytes, parameter block length, block, name length, name.
        0x28 => {
            let mut r = Reader::new(param);
            if r.skip(8).is_none() {
                return false;
            }
            let Some(block) = r.u16_be() else {
                return false;
            };
            if r.skip(usize::from(block)).is_none() {
                return false;
            }
            let Some(n) = r.u8() else { return false };
            r.skip(usize::from(n)).is_some()
        }
        // PLC stop: function, 5 bytes, name length, name (`P_PROGRAM`).
        0x29 => {
            let mut r = Reader::new(param);
            if r.skip(6).is_none() {
                return false;
            }
            let Some(n) = r.u8() else { return false };
            r.skip(usize::from(n)).is_some()
        }
        _ => true,
    }
}

/// User-data type nibble.
mod ud_type {
    pub const PUSH: u8 = 0x0;
    pub const NC_PUSH: u8 = 0x3;
    pub const REQUEST: u8 = 0x4;
    pub const NC_REQUEST: u8 = 0x7;
    pub const RESPONSE: u8 = 0x8;
    pub const NC_RESPONSE: u8 = 0xB;
}

/// Return code "success" of user data (and of read-var items).
const RETURN_SUCCESS: u8 = 0xFF;

fn decode_userdata(h: &S7Header<'_>, side: Side, sink: &mut dyn PduSink) -> PduKind {
    let mut r = Reader::new(h.param);
    let head = r.take(3);
    let plen = r.u8();
    let _method = r.u8();
    let type_group = r.u8();
    let subfunction = r.u8();
    let _seq = r.u8();
    let (Some(head), Some(plen), Some(type_group), Some(subfunction)) =
        (head, plen, type_group, subfunction)
    else {
        sink.violation(Violation::S7BadParameter);
        return PduKind::Message;
    };
    if head != USERDATA_HEAD {
        sink.violation(Violation::S7BadParameter);
        return PduKind::Message;
    }
    if usize::from(plen) + 4 != usize::from(h.param_len) {
        sink.violation(Violation::S7BadParameter);
    }
    // The 8-byte form ends with data unit reference, last data unit and an error code.
    let param_error = if plen >= 8 {
        let _dur = r.u8();
        let _last = r.u8();
        r.u16_be().unwrap_or(0)
    } else {
        0
    };
    let ty = type_group >> 4;
    let group = type_group & 0x0F;
    let cmd = match userdata_cmd(group, subfunction) {
        Some(c) => c,
        None => {
            sink.violation(Violation::S7UnknownFunction);
            Cmd::S7Unknown
        }
    };
    match ty {
        ud_type::REQUEST | ud_type::NC_REQUEST => PduKind::Request(cmd),
        ud_type::RESPONSE | ud_type::NC_RESPONSE => {
            let return_code = h.data.first().copied();
            if param_error != 0 || return_code.is_some_and(|c| c != RETURN_SUCCESS) {
                return PduKind::Exception(cmd);
            }
            if cmd == Cmd::S7ReadSzl {
                szl_identity(h.data, side, sink);
            }
            PduKind::Response(cmd)
        }
        // Push: a report the CPU sends on its own (cyclic data, alarms, mode changes).
        ud_type::PUSH | ud_type::NC_PUSH => PduKind::Response(cmd),
        _ => {
            sink.violation(Violation::S7BadParameter);
            PduKind::Message
        }
    }
}

/// SZL lists that identify the device.
const SZL_MODULE_ID: u8 = 0x11;
const SZL_COMPONENT_ID: u8 = 0x1C;
/// Record lengths of those lists.
const SZL_MODULE_ID_RECORD: u16 = 28;
const SZL_COMPONENT_ID_RECORD: u16 = 34;
/// Records read at most from one answer (0x001C has 11 indices, 0x0011 four).
const SZL_MAX_RECORDS: u16 = 16;

/// Reports the identity in an SZL answer (SZL-ID 0x0011 or 0x001C, any extract), found in
/// the data part of a successful "read SZL" response. The continuation of an answer split
/// over several user-data PDUs has no SZL header and fails the record checks.
fn szl_identity(data: &[u8], side: Side, sink: &mut dyn PduSink) {
    let mut r = Reader::new(data);
    let (Some(RETURN_SUCCESS), Some(_tsize), Some(_len)) = (r.u8(), r.u8(), r.u16_be()) else {
        return;
    };
    let (Some(szl_id), Some(_index), Some(rec_len), Some(count)) =
        (r.u16_be(), r.u16_be(), r.u16_be(), r.u16_be())
    else {
        return;
    };
    let list = (szl_id & 0xFF) as u8;
    let expected = match list {
        SZL_MODULE_ID => SZL_MODULE_ID_RECORD,
        SZL_COMPONENT_ID => SZL_COMPONENT_ID_RECORD,
        _ => return,
    };
    if rec_len != expected || count > SZL_MAX_RECORDS {
        return;
    }
    let mut id = Identity::default();
    let mut fw_buf = [0u8; 16];
    let mut fw_len = 0;
    let mut model_fallback = None;
    for _ in 0..count {
        let Some(mut rec) = r.sub(usize::from(rec_len)) else {
            break;
        };
        let Some(index) = rec.u16_be() else { break };
        let body = rec.rest();
        if list == SZL_MODULE_ID {
            match index {
                // Module identification: the order number (MLFB) is the model.
                0x0001 => id.model = text(body.get(..20).unwrap_or(&[])),
                // Basic hardware: same order number, used when index 1 is missing.
                0x0006 => model_fallback = text(body.get(..20).unwrap_or(&[])),
                // Basic firmware: Ausbg/Ausbe hold 'V', major, minor, patch.
                0x0007 => {
                    let v = body.get(22..26).unwrap_or(&[]);
                    if byte(v, 0) == b'V' && v.len() == 4 {
                        fw_len = format_version(&mut fw_buf, byte(v, 1), byte(v, 2), byte(v, 3));
                    }
                }
                _ => {}
            }
        } else {
            match index {
                0x0001 => id.name = text(body),
                0x0002 => id.model = text(body),
                0x0005 => id.serial = text(body),
                // Module type name, used when the module name is missing.
                0x0007 => model_fallback = text(body),
                // Index 4 is the copyright ("Original Siemens Equipment"): the vendor.
                _ => {}
            }
        }
    }
    if id.model.is_none() {
        id.model = model_fallback;
    }
    if fw_len > 0 {
        id.firmware = fw_buf.get(..fw_len);
    }
    if id.model.is_some() || id.name.is_some() || id.serial.is_some() || id.firmware.is_some() {
        id.vendor = Some(b"Siemens");
        sink.identity(side, &id);
    }
}

/// An SZL text field: up to the first NUL, without surrounding blanks; `None` when empty.
fn text(field: &[u8]) -> Option<&[u8]> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let s = field.get(..end)?.trim_ascii();
    (!s.is_empty()).then_some(s)
}

/// Writes `V<major>.<minor>.<patch>` into `buf`, returning its length.
fn format_version(buf: &mut [u8; 16], major: u8, minor: u8, patch: u8) -> usize {
    use std::io::Write;
    let cap = buf.len();
    let mut w: &mut [u8] = buf;
    match write!(w, "V{major}.{minor}.{patch}") {
        Ok(()) => cap - w.len(),
        Err(_) => 0,
    }
}

/// S7comm-plus protocol versions (header byte 1).
pub mod s7p_version {
    pub const V1: u8 = 0x01;
    pub const V2: u8 = 0x02;
    pub const V3: u8 = 0x03;
    pub const EXT_KEEPALIVE: u8 = 0xFE;
    pub const KEEPALIVE: u8 = 0xFF;
}

/// S7comm-plus opcodes (first byte of the data part).
pub mod s7p_opcode {
    pub const REQUEST: u8 = 0x31;
    pub const RESPONSE: u8 = 0x32;
    pub const NOTIFICATION: u8 = 0x33;
    pub const RESPONSE2: u8 = 0x02;
}

/// Length byte of the version-3 integrity part (a 32-byte digest follows).
const S7P_DIGEST_LEN: u8 = 0x20;
const S7P_HEADER_LEN: usize = 4;
const S7P_TRAILER_LEN: usize = 4;

fn is_s7p_opcode(b: u8) -> bool {
    matches!(
        b,
        s7p_opcode::REQUEST
            | s7p_opcode::RESPONSE
            | s7p_opcode::NOTIFICATION
            | s7p_opcode::RESPONSE2
    )
}

/// Whether the S7comm-plus PDU at the start of `pdu` (whose full length on the wire is
/// `full_len`) ends with a trailer, i.e. is whole or the last fragment. `None` when `pdu`
/// does not start with an S7comm-plus data header (version 1, 2, 3 or 0xFE).
pub fn s7plus_has_trailer(pdu: &[u8], full_len: usize) -> Option<bool> {
    if byte(pdu, 0) != S7PLUS_PROTOCOL_ID || pdu.len() < S7P_HEADER_LEN {
        return None;
    }
    match byte(pdu, 1) {
        s7p_version::V1 | s7p_version::V2 | s7p_version::V3 | s7p_version::EXT_KEEPALIVE => {}
        _ => return None,
    }
    let dlen = usize::from(be16(pdu, 2));
    Some(full_len >= S7P_HEADER_LEN + dlen + S7P_TRAILER_LEN)
}

/// Classifier test for S7comm-plus.
pub fn probe_s7plus(pdu: &[u8], complete: bool) -> Probe {
    let unsure_or_no = if complete { Probe::No } else { Probe::Unsure };
    if byte(pdu, 0) != S7PLUS_PROTOCOL_ID {
        return Probe::No;
    }
    let Some(&version) = pdu.get(1) else {
        return unsure_or_no;
    };
    match version {
        s7p_version::KEEPALIVE => {
            return if pdu.len() < S7P_HEADER_LEN {
                unsure_or_no
            } else if pdu.len() == S7P_HEADER_LEN || !complete {
                Probe::Match
            } else {
                Probe::No
            };
        }
        s7p_version::V1 | s7p_version::V2 | s7p_version::V3 | s7p_version::EXT_KEEPALIVE => {}
        _ => return Probe::No,
    }
    if pdu.len() < S7P_HEADER_LEN {
        return unsure_or_no;
    }
    let dlen = usize::from(be16(pdu, 2));
    let fragment = S7P_HEADER_LEN + dlen;
    let whole = fragment + S7P_TRAILER_LEN;
    let fits = if complete {
        (pdu.len() == fragment && dlen > 0)
            || (pdu.len() == whole
                && byte(pdu, fragment) == S7PLUS_PROTOCOL_ID
                && be16(pdu, fragment + 2) == 0)
    } else {
        pdu.len() <= whole
    };
    if !fits {
        return Probe::No;
    }
    if version == s7p_version::EXT_KEEPALIVE {
        return Probe::Match;
    }
    if dlen == 0 {
        return Probe::No;
    }
    match pdu.get(S7P_HEADER_LEN) {
        None => unsure_or_no,
        Some(&b) if is_s7p_opcode(b) => Probe::Match,
        Some(&S7P_DIGEST_LEN) if version == s7p_version::V3 => Probe::Match,
        Some(_) => Probe::No,
    }
}

/// Dissects one S7comm-plus PDU (the COTP DT user data, the first fragment of a
/// fragmented PDU). `truncated`: the PDU goes on beyond `pdu`.
pub fn dissect_s7plus(pdu: &[u8], side: Side, truncated: bool, sink: &mut dyn PduSink) {
    let kind = decode_s7plus(pdu, truncated, sink);
    sink.pdu(side, &Pdu::new(Proto::S7commplus, kind));
}

fn decode_s7plus(pdu: &[u8], truncated: bool, sink: &mut dyn PduSink) -> PduKind {
    let mut r = Reader::new(pdu);
    let Some(id) = r.u8() else {
        return PduKind::Message;
    };
    if id != S7PLUS_PROTOCOL_ID {
        // After InitSsl the connection carries TLS records: encrypted, not malformed.
        if !super::tpkt::looks_like_tls(pdu) {
            sink.violation(Violation::S7plusBadHeader);
        }
        return PduKind::Message;
    }
    let Some(version) = r.u8() else {
        if !truncated {
            sink.violation(Violation::S7plusBadHeader);
        }
        return PduKind::Message;
    };
    match version {
        s7p_version::V1 | s7p_version::V2 | s7p_version::V3 => {}
        // Keep-alives carry no command.
        s7p_version::KEEPALIVE | s7p_version::EXT_KEEPALIVE => return PduKind::Message,
        _ => {
            sink.violation(Violation::S7plusBadHeader);
            return PduKind::Message;
        }
    }
    let Some(dlen) = r.u16_be() else {
        if !truncated {
            sink.violation(Violation::S7plusBadHeader);
        }
        return PduKind::Message;
    };
    let dlen = usize::from(dlen);
    if !truncated {
        let fragment = S7P_HEADER_LEN + dlen;
        let whole =
            pdu.len() == fragment + S7P_TRAILER_LEN && byte(pdu, fragment) == S7PLUS_PROTOCOL_ID;
        if !(whole || pdu.len() == fragment) || dlen == 0 {
            sink.violation(Violation::S7plusBadHeader);
            return PduKind::Message;
        }
    }
    let mut data = r;
    if version == s7p_version::V3 {
        // Integrity part first (S7-1500 firmware >= 1.5): digest length and digest.
        match data.peek(0) {
            Some(S7P_DIGEST_LEN) => {
                if data.skip(1 + usize::from(S7P_DIGEST_LEN)).is_none() {
                    return PduKind::Message;
                }
            }
            Some(b) if is_s7p_opcode(b) => {}
            // Unreadable (another integrity layout): not a violation, just opaque.
            _ => return PduKind::Message,
        }
    }
    let Some(opcode) = data.u8() else {
        return PduKind::Message;
    };
    if opcode == s7p_opcode::NOTIFICATION {
        return PduKind::Response(Cmd::S7pNotification);
    }
    if !matches!(
        opcode,
        s7p_opcode::REQUEST | s7p_opcode::RESPONSE | s7p_opcode::RESPONSE2
    ) {
        if version != s7p_version::V3 {
            sink.violation(Violation::S7plusBadHeader);
        }
        return PduKind::Message;
    }
    let (Some(_reserved), Some(function)) = (data.u16_be(), data.u16_be()) else {
        return PduKind::Message;
    };
    let cmd = s7plus_cmd(function).unwrap_or(Cmd::S7pUnknown);
    match (opcode, cmd) {
        (s7p_opcode::REQUEST, c) => PduKind::Request(c),
        (_, Cmd::S7pError) => PduKind::Exception(Cmd::S7pError),
        (_, c) => PduKind::Response(c),
    }
}

#[cfg(test)]
mod tests;
