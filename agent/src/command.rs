//! The one table of ICS commands: each command's protocol, its name (the protocol
//! specification's own name in snake_case) and its class (DESIGN.md, "Classification").
//! Operators see these names in metrics, events and policy files; `docs` in README.md
//! lists them from this table.
//!
//! A command is counted as a request (`ics_commands`) or a response (`ics_responses`);
//! exceptions and error responses are counted under the protocol's `exception` entry.
//! Codes the specifications do not define map to the protocol's `unknown` entry, so the
//! label set stays closed whatever arrives on the wire.

use crate::proto::Proto;
use std::fmt;

/// What a command does to the process, for policy and severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    Read,
    Write,
    Control,
    Program,
    State,
    Config,
    Diagnostic,
    Other,
}

impl Class {
    pub const ALL: &'static [Class] = &[
        Class::Read,
        Class::Write,
        Class::Control,
        Class::Program,
        Class::State,
        Class::Config,
        Class::Diagnostic,
        Class::Other,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Control => "control",
            Class::Program => "program",
            Class::State => "state",
            Class::Config => "config",
            Class::Diagnostic => "diagnostic",
            Class::Other => "other",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of the command table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandInfo {
    pub proto: Proto,
    pub name: &'static str,
    pub class: Class,
}

macro_rules! commands {
    ($($variant:ident => ($proto:ident, $name:literal, $class:ident)),* $(,)?) => {
        /// A command id: dense from 0, usable as an array index.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum Cmd { $($variant),* }

        impl Cmd {
            /// Every command, in table order.
            pub const ALL: &'static [Cmd] = &[$(Cmd::$variant),*];
            pub const COUNT: usize = Cmd::ALL.len();

            pub const fn info(self) -> CommandInfo {
                match self {
                    $(Cmd::$variant => CommandInfo {
                        proto: Proto::$proto,
                        name: $name,
                        class: Class::$class,
                    }),*
                }
            }
        }
    };
}

commands! {
    // Modbus Application Protocol Specification V1.1b3, section 6 (public function
    // codes), plus the legacy Modicon programming codes and Schneider UMAS (fc 90),
    // which carry PLC programming and stop/start.
    ModbusReadCoils => (Modbus, "read_coils", Read),
    ModbusReadDiscreteInputs => (Modbus, "read_discrete_inputs", Read),
    ModbusReadHoldingRegisters => (Modbus, "read_holding_registers", Read),
    ModbusReadInputRegisters => (Modbus, "read_input_registers", Read),
    ModbusWriteSingleCoil => (Modbus, "write_single_coil", Write),
    ModbusWriteSingleRegister => (Modbus, "write_single_register", Write),
    ModbusReadExceptionStatus => (Modbus, "read_exception_status", Diagnostic),
    ModbusDiagnostics => (Modbus, "diagnostics", Diagnostic),
    ModbusGetCommEventCounter => (Modbus, "get_comm_event_counter", Diagnostic),
    ModbusGetCommEventLog => (Modbus, "get_comm_event_log", Diagnostic),
    ModbusWriteMultipleCoils => (Modbus, "write_multiple_coils", Write),
    ModbusWriteMultipleRegisters => (Modbus, "write_multiple_registers", Write),
    ModbusReportServerId => (Modbus, "report_server_id", Diagnostic),
    ModbusReadFileRecord => (Modbus, "read_file_record", Read),
    ModbusWriteFileRecord => (Modbus, "write_file_record", Write),
    ModbusMaskWriteRegister => (Modbus, "mask_write_register", Write),
    ModbusReadWriteMultipleRegisters => (Modbus, "read_write_multiple_registers", Write),
    ModbusReadFifoQueue => (Modbus, "read_fifo_queue", Read),
    ModbusEncapsulatedInterfaceTransport => (Modbus, "encapsulated_interface_transport", Other),
    ModbusReadDeviceIdentification => (Modbus, "read_device_identification", Diagnostic),
    ModbusLegacyProgram => (Modbus, "legacy_program", Program),
    ModbusLegacyPoll => (Modbus, "legacy_poll", Diagnostic),
    ModbusResetCommLink => (Modbus, "reset_comm_link", State),
    ModbusFirmwareReplacement => (Modbus, "firmware_replacement", Program),
    ModbusUmas => (Modbus, "umas", Program),
    ModbusUserDefined => (Modbus, "user_defined", Other),
    ModbusUnknown => (Modbus, "unknown", Other),

    // DNP3, IEEE 1815-2012 table 4-1 (application layer function codes).
    Dnp3Confirm => (Dnp3, "confirm", Other),
    Dnp3Read => (Dnp3, "read", Read),
    Dnp3Write => (Dnp3, "write", Write),
    Dnp3Select => (Dnp3, "select", Control),
    Dnp3Operate => (Dnp3, "operate", Control),
    Dnp3DirectOperate => (Dnp3, "direct_operate", Control),
    Dnp3DirectOperateNr => (Dnp3, "direct_operate_nr", Control),
    Dnp3ImmedFreeze => (Dnp3, "immed_freeze", Control),
    Dnp3ImmedFreezeNr => (Dnp3, "immed_freeze_nr", Control),
    Dnp3FreezeClear => (Dnp3, "freeze_clear", Control),
    Dnp3FreezeClearNr => (Dnp3, "freeze_clear_nr", Control),
    Dnp3FreezeAtTime => (Dnp3, "freeze_at_time", Control),
    Dnp3FreezeAtTimeNr => (Dnp3, "freeze_at_time_nr", Control),
    Dnp3ColdRestart => (Dnp3, "cold_restart", State),
    Dnp3WarmRestart => (Dnp3, "warm_restart", State),
    Dnp3InitializeData => (Dnp3, "initialize_data", State),
    Dnp3InitializeApplication => (Dnp3, "initialize_application", State),
    Dnp3StartApplication => (Dnp3, "start_application", State),
    Dnp3StopApplication => (Dnp3, "stop_application", State),
    Dnp3SaveConfiguration => (Dnp3, "save_configuration", Config),
    Dnp3EnableUnsolicited => (Dnp3, "enable_unsolicited", Config),
    Dnp3DisableUnsolicited => (Dnp3, "disable_unsolicited", Config),
    Dnp3AssignClass => (Dnp3, "assign_class", Config),
    Dnp3DelayMeasure => (Dnp3, "delay_measure", Diagnostic),
    Dnp3RecordCurrentTime => (Dnp3, "record_current_time", Config),
    Dnp3OpenFile => (Dnp3, "open_file", Program),
    Dnp3CloseFile => (Dnp3, "close_file", Program),
    Dnp3DeleteFile => (Dnp3, "delete_file", Program),
    Dnp3GetFileInfo => (Dnp3, "get_file_info", Read),
    Dnp3AuthenticateFile => (Dnp3, "authenticate_file", Other),
    Dnp3AbortFile => (Dnp3, "abort_file", Program),
    Dnp3ActivateConfig => (Dnp3, "activate_config", Config),
    Dnp3AuthenticateReq => (Dnp3, "authenticate_req", Other),
    // 33 is AUTH_REQ_NO_ACK in IEEE 1815-2012 (an authentication request that expects no
    // response); some tools still call it "authenticate error" after an SA draft.
    Dnp3AuthenticateReqNoAck => (Dnp3, "authenticate_req_no_ack", Other),
    Dnp3Response => (Dnp3, "response", Other),
    Dnp3UnsolicitedResponse => (Dnp3, "unsolicited_response", Other),
    Dnp3AuthenticateResp => (Dnp3, "authenticate_resp", Other),
    Dnp3Unknown => (Dnp3, "unknown", Other),

    // IEC 60870-5-104 (and -101 type identifications, IEC 60870-5-101 7.2.1).
    // Process information in monitor direction: counted as responses.
    Iec104MSpNa1 => (Iec104, "m_sp_na_1", Read),
    Iec104MSpTa1 => (Iec104, "m_sp_ta_1", Read),
    Iec104MDpNa1 => (Iec104, "m_dp_na_1", Read),
    Iec104MDpTa1 => (Iec104, "m_dp_ta_1", Read),
    Iec104MStNa1 => (Iec104, "m_st_na_1", Read),
    Iec104MStTa1 => (Iec104, "m_st_ta_1", Read),
    Iec104MBoNa1 => (Iec104, "m_bo_na_1", Read),
    Iec104MBoTa1 => (Iec104, "m_bo_ta_1", Read),
    Iec104MMeNa1 => (Iec104, "m_me_na_1", Read),
    Iec104MMeTa1 => (Iec104, "m_me_ta_1", Read),
    Iec104MMeNb1 => (Iec104, "m_me_nb_1", Read),
    Iec104MMeTb1 => (Iec104, "m_me_tb_1", Read),
    Iec104MMeNc1 => (Iec104, "m_me_nc_1", Read),
    Iec104MMeTc1 => (Iec104, "m_me_tc_1", Read),
    Iec104MItNa1 => (Iec104, "m_it_na_1", Read),
    Iec104MItTa1 => (Iec104, "m_it_ta_1", Read),
    Iec104MEpTa1 => (Iec104, "m_ep_ta_1", Read),
    Iec104MEpTb1 => (Iec104, "m_ep_tb_1", Read),
    Iec104MEpTc1 => (Iec104, "m_ep_tc_1", Read),
    Iec104MPsNa1 => (Iec104, "m_ps_na_1", Read),
    Iec104MMeNd1 => (Iec104, "m_me_nd_1", Read),
    Iec104MSpTb1 => (Iec104, "m_sp_tb_1", Read),
    Iec104MDpTb1 => (Iec104, "m_dp_tb_1", Read),
    Iec104MStTb1 => (Iec104, "m_st_tb_1", Read),
    Iec104MBoTb1 => (Iec104, "m_bo_tb_1", Read),
    Iec104MMeTd1 => (Iec104, "m_me_td_1", Read),
    Iec104MMeTe1 => (Iec104, "m_me_te_1", Read),
    Iec104MMeTf1 => (Iec104, "m_me_tf_1", Read),
    Iec104MItTb1 => (Iec104, "m_it_tb_1", Read),
    Iec104MEpTd1 => (Iec104, "m_ep_td_1", Read),
    Iec104MEpTe1 => (Iec104, "m_ep_te_1", Read),
    Iec104MEpTf1 => (Iec104, "m_ep_tf_1", Read),
    Iec104MEiNa1 => (Iec104, "m_ei_na_1", Read),
    // Process information in control direction.
    Iec104CScNa1 => (Iec104, "c_sc_na_1", Control),
    Iec104CDcNa1 => (Iec104, "c_dc_na_1", Control),
    Iec104CRcNa1 => (Iec104, "c_rc_na_1", Control),
    Iec104CSeNa1 => (Iec104, "c_se_na_1", Control),
    Iec104CSeNb1 => (Iec104, "c_se_nb_1", Control),
    Iec104CSeNc1 => (Iec104, "c_se_nc_1", Control),
    Iec104CBoNa1 => (Iec104, "c_bo_na_1", Control),
    Iec104CScTa1 => (Iec104, "c_sc_ta_1", Control),
    Iec104CDcTa1 => (Iec104, "c_dc_ta_1", Control),
    Iec104CRcTa1 => (Iec104, "c_rc_ta_1", Control),
    Iec104CSeTa1 => (Iec104, "c_se_ta_1", Control),
    Iec104CSeTb1 => (Iec104, "c_se_tb_1", Control),
    Iec104CSeTc1 => (Iec104, "c_se_tc_1", Control),
    Iec104CBoTa1 => (Iec104, "c_bo_ta_1", Control),
    // System information in control direction.
    Iec104CIcNa1 => (Iec104, "c_ic_na_1", Read),
    Iec104CCiNa1 => (Iec104, "c_ci_na_1", Read),
    Iec104CRdNa1 => (Iec104, "c_rd_na_1", Read),
    Iec104CCsNa1 => (Iec104, "c_cs_na_1", Control),
    Iec104CTsNa1 => (Iec104, "c_ts_na_1", Diagnostic),
    Iec104CRpNa1 => (Iec104, "c_rp_na_1", State),
    Iec104CCdNa1 => (Iec104, "c_cd_na_1", Diagnostic),
    Iec104CTsTa1 => (Iec104, "c_ts_ta_1", Diagnostic),
    // Parameters in control direction.
    Iec104PMeNa1 => (Iec104, "p_me_na_1", Config),
    Iec104PMeNb1 => (Iec104, "p_me_nb_1", Config),
    Iec104PMeNc1 => (Iec104, "p_me_nc_1", Config),
    Iec104PAcNa1 => (Iec104, "p_ac_na_1", Config),
    // File transfer.
    Iec104FFrNa1 => (Iec104, "f_fr_na_1", Program),
    Iec104FSrNa1 => (Iec104, "f_sr_na_1", Program),
    Iec104FScNa1 => (Iec104, "f_sc_na_1", Program),
    Iec104FLsNa1 => (Iec104, "f_ls_na_1", Program),
    Iec104FAfNa1 => (Iec104, "f_af_na_1", Program),
    Iec104FSgNa1 => (Iec104, "f_sg_na_1", Program),
    Iec104FDrTa1 => (Iec104, "f_dr_ta_1", Program),
    Iec104FScNb1 => (Iec104, "f_sc_nb_1", Program),
    // APCI U-format functions (IEC 60870-5-104 5.3): activation is the request,
    // confirmation the response.
    Iec104Startdt => (Iec104, "startdt", Other),
    Iec104Stopdt => (Iec104, "stopdt", Other),
    Iec104Testfr => (Iec104, "testfr", Diagnostic),
    Iec104Unknown => (Iec104, "unknown", Other),

    // S7comm job functions (ROSCTR 1) and user-data functions (ROSCTR 7).
    S7CpuServices => (S7comm, "cpu_services", Other),
    S7ReadVar => (S7comm, "read_var", Read),
    S7WriteVar => (S7comm, "write_var", Write),
    S7RequestDownload => (S7comm, "request_download", Program),
    S7DownloadBlock => (S7comm, "download_block", Program),
    S7DownloadEnded => (S7comm, "download_ended", Program),
    S7StartUpload => (S7comm, "start_upload", Program),
    S7Upload => (S7comm, "upload", Program),
    S7EndUpload => (S7comm, "end_upload", Program),
    S7PlcControl => (S7comm, "plc_control", State),
    S7PlcStop => (S7comm, "plc_stop", State),
    S7SetupCommunication => (S7comm, "setup_communication", Other),
    S7ModeTransition => (S7comm, "mode_transition", State),
    S7ProgrammerCommand => (S7comm, "programmer_command", Diagnostic),
    S7ForceVariable => (S7comm, "force_variable", Write),
    S7MemoryReset => (S7comm, "memory_reset", State),
    S7CyclicData => (S7comm, "cyclic_data", Read),
    S7BlockFunctions => (S7comm, "block_functions", Read),
    S7ReadSzl => (S7comm, "read_szl", Diagnostic),
    S7MessageService => (S7comm, "message_service", Other),
    S7CpuFunction => (S7comm, "cpu_function", Diagnostic),
    S7Password => (S7comm, "password", Config),
    S7Bsend => (S7comm, "bsend", Other),
    S7ReadClock => (S7comm, "read_clock", Read),
    S7SetClock => (S7comm, "set_clock", Config),
    S7NcProgramming => (S7comm, "nc_programming", Program),
    S7Unknown => (S7comm, "unknown", Other),

    // S7comm-plus (Siemens S7-1200/1500), function codes of the opcode data part.
    S7pExplore => (S7commplus, "explore", Read),
    S7pCreateObject => (S7commplus, "create_object", Other),
    S7pDeleteObject => (S7commplus, "delete_object", Other),
    S7pSetVariable => (S7commplus, "set_variable", Write),
    S7pGetVariable => (S7commplus, "get_variable", Read),
    S7pAddLink => (S7commplus, "add_link", Other),
    S7pRemoveLink => (S7commplus, "remove_link", Other),
    S7pGetLink => (S7commplus, "get_link", Read),
    S7pSetMultiVariables => (S7commplus, "set_multi_variables", Write),
    S7pGetMultiVariables => (S7commplus, "get_multi_variables", Read),
    S7pBeginSequence => (S7commplus, "begin_sequence", Other),
    S7pEndSequence => (S7commplus, "end_sequence", Other),
    S7pInvoke => (S7commplus, "invoke", Control),
    S7pSetVarSubStreamed => (S7commplus, "set_var_sub_streamed", Write),
    S7pGetVarSubStreamed => (S7commplus, "get_var_sub_streamed", Read),
    S7pGetVariablesAddress => (S7commplus, "get_variables_address", Read),
    S7pAbort => (S7commplus, "abort", Other),
    S7pError => (S7commplus, "error", Other),
    S7pInitSsl => (S7commplus, "init_ssl", Other),
    S7pNotification => (S7commplus, "notification", Other),
    S7pUnknown => (S7commplus, "unknown", Other),

    // MMS (ISO 9506-2), confirmed services and unconfirmed reports.
    // association and PDUs that are not confirmed services (ISO 9506-2 `MMSpdu`).
    MmsInitiate => (Mms, "initiate", Other),
    MmsConclude => (Mms, "conclude", Other),
    MmsCancel => (Mms, "cancel", Other),
    // IEC 61850-8-1 control model: a write (for SBO a read) of a control object's Oper,
    // SBOw, Cancel or SBO attribute, i.e. a breaker or switch being operated.
    MmsOperate => (Mms, "operate", Control),
    // ConfirmedServiceRequest choice tags `[0]`..`[77]` (ISO 9506-2 `ConfirmedServiceRequest`).
    MmsStatus => (Mms, "status", Diagnostic),
    MmsGetNameList => (Mms, "get_name_list", Read),
    MmsIdentify => (Mms, "identify", Diagnostic),
    MmsRename => (Mms, "rename", Config),
    MmsRead => (Mms, "read", Read),
    MmsWrite => (Mms, "write", Write),
    MmsGetVariableAccessAttributes => (Mms, "get_variable_access_attributes", Read),
    MmsDefineNamedVariable => (Mms, "define_named_variable", Config),
    MmsDefineScatteredAccess => (Mms, "define_scattered_access", Config),
    MmsGetScatteredAccessAttributes => (Mms, "get_scattered_access_attributes", Read),
    MmsDeleteVariableAccess => (Mms, "delete_variable_access", Config),
    MmsDefineNamedVariableList => (Mms, "define_named_variable_list", Config),
    MmsGetNamedVariableListAttributes => (Mms, "get_named_variable_list_attributes", Read),
    MmsDeleteNamedVariableList => (Mms, "delete_named_variable_list", Config),
    MmsDefineNamedType => (Mms, "define_named_type", Config),
    MmsGetNamedTypeAttributes => (Mms, "get_named_type_attributes", Read),
    MmsDeleteNamedType => (Mms, "delete_named_type", Config),
    MmsInput => (Mms, "input", Read),
    MmsOutput => (Mms, "output", Write),
    MmsTakeControl => (Mms, "take_control", Other),
    MmsRelinquishControl => (Mms, "relinquish_control", Other),
    MmsDefineSemaphore => (Mms, "define_semaphore", Config),
    MmsDeleteSemaphore => (Mms, "delete_semaphore", Config),
    MmsReportSemaphoreStatus => (Mms, "report_semaphore_status", Diagnostic),
    MmsReportPoolSemaphoreStatus => (Mms, "report_pool_semaphore_status", Diagnostic),
    MmsReportSemaphoreEntryStatus => (Mms, "report_semaphore_entry_status", Diagnostic),
    MmsInitiateDownloadSequence => (Mms, "initiate_download_sequence", Program),
    MmsDownloadSegment => (Mms, "download_segment", Program),
    MmsTerminateDownloadSequence => (Mms, "terminate_download_sequence", Program),
    MmsInitiateUploadSequence => (Mms, "initiate_upload_sequence", Program),
    MmsUploadSegment => (Mms, "upload_segment", Program),
    MmsTerminateUploadSequence => (Mms, "terminate_upload_sequence", Program),
    MmsRequestDomainDownload => (Mms, "request_domain_download", Program),
    MmsRequestDomainUpload => (Mms, "request_domain_upload", Program),
    MmsLoadDomainContent => (Mms, "load_domain_content", Program),
    MmsStoreDomainContent => (Mms, "store_domain_content", Program),
    MmsDeleteDomain => (Mms, "delete_domain", Program),
    MmsGetDomainAttributes => (Mms, "get_domain_attributes", Read),
    MmsCreateProgramInvocation => (Mms, "create_program_invocation", Program),
    MmsDeleteProgramInvocation => (Mms, "delete_program_invocation", Program),
    MmsStart => (Mms, "start", State),
    MmsStop => (Mms, "stop", State),
    MmsResume => (Mms, "resume", State),
    MmsReset => (Mms, "reset", State),
    MmsKill => (Mms, "kill", State),
    MmsGetProgramInvocationAttributes => (Mms, "get_program_invocation_attributes", Read),
    MmsObtainFile => (Mms, "obtain_file", Program),
    MmsDefineEventCondition => (Mms, "define_event_condition", Config),
    MmsDeleteEventCondition => (Mms, "delete_event_condition", Config),
    MmsGetEventConditionAttributes => (Mms, "get_event_condition_attributes", Read),
    MmsReportEventConditionStatus => (Mms, "report_event_condition_status", Diagnostic),
    MmsAlterEventConditionMonitoring => (Mms, "alter_event_condition_monitoring", Config),
    MmsTriggerEvent => (Mms, "trigger_event", Control),
    MmsDefineEventAction => (Mms, "define_event_action", Config),
    MmsDeleteEventAction => (Mms, "delete_event_action", Config),
    MmsGetEventActionAttributes => (Mms, "get_event_action_attributes", Read),
    MmsReportEventActionStatus => (Mms, "report_event_action_status", Diagnostic),
    MmsDefineEventEnrollment => (Mms, "define_event_enrollment", Config),
    MmsDeleteEventEnrollment => (Mms, "delete_event_enrollment", Config),
    MmsAlterEventEnrollment => (Mms, "alter_event_enrollment", Config),
    MmsReportEventEnrollmentStatus => (Mms, "report_event_enrollment_status", Diagnostic),
    MmsGetEventEnrollmentAttributes => (Mms, "get_event_enrollment_attributes", Read),
    MmsAcknowledgeEventNotification => (Mms, "acknowledge_event_notification", Other),
    MmsGetAlarmSummary => (Mms, "get_alarm_summary", Read),
    MmsGetAlarmEnrollmentSummary => (Mms, "get_alarm_enrollment_summary", Read),
    MmsReadJournal => (Mms, "read_journal", Read),
    MmsWriteJournal => (Mms, "write_journal", Write),
    MmsInitializeJournal => (Mms, "initialize_journal", Write),
    MmsReportJournalStatus => (Mms, "report_journal_status", Diagnostic),
    MmsCreateJournal => (Mms, "create_journal", Config),
    MmsDeleteJournal => (Mms, "delete_journal", Config),
    MmsGetCapabilityList => (Mms, "get_capability_list", Diagnostic),
    MmsFileOpen => (Mms, "file_open", Program),
    MmsFileRead => (Mms, "file_read", Program),
    MmsFileClose => (Mms, "file_close", Program),
    MmsFileRename => (Mms, "file_rename", Program),
    MmsFileDelete => (Mms, "file_delete", Program),
    MmsFileDirectory => (Mms, "file_directory", Read),
    // additionalService `[78]` (ISO 9506-2:2003 `AdditionalService-Request`).
    MmsVmdStop => (Mms, "vmd_stop", State),
    MmsVmdReset => (Mms, "vmd_reset", State),
    MmsSelect => (Mms, "select", State),
    MmsAlterPi => (Mms, "alter_pi", Config),
    MmsInitiateUcLoad => (Mms, "initiate_uc_load", Program),
    MmsUcLoad => (Mms, "uc_load", Program),
    MmsUcUpload => (Mms, "uc_upload", Program),
    MmsStartUc => (Mms, "start_uc", State),
    MmsStopUc => (Mms, "stop_uc", State),
    MmsCreateUc => (Mms, "create_uc", Config),
    MmsAddToUc => (Mms, "add_to_uc", Config),
    MmsRemoveFromUc => (Mms, "remove_from_uc", Config),
    MmsGetUcAttributes => (Mms, "get_uc_attributes", Read),
    MmsLoadUcFromFile => (Mms, "load_uc_from_file", Program),
    MmsStoreUcToFile => (Mms, "store_uc_to_file", Program),
    MmsDeleteUc => (Mms, "delete_uc", Config),
    MmsDefineEcl => (Mms, "define_ecl", Config),
    MmsDeleteEcl => (Mms, "delete_ecl", Config),
    MmsAddEclReference => (Mms, "add_ecl_reference", Config),
    MmsRemoveEclReference => (Mms, "remove_ecl_reference", Config),
    MmsGetEclAttributes => (Mms, "get_ecl_attributes", Read),
    MmsReportEclStatus => (Mms, "report_ecl_status", Diagnostic),
    MmsAlterEclMonitoring => (Mms, "alter_ecl_monitoring", Config),
    // choices `[80]`..`[86]` (ISO 9506-2:2003: data exchange and access control).
    MmsGetDataExchangeAttributes => (Mms, "get_data_exchange_attributes", Read),
    MmsExchangeData => (Mms, "exchange_data", Write),
    MmsDefineAccessControlList => (Mms, "define_access_control_list", Config),
    MmsGetAccessControlListAttributes => (Mms, "get_access_control_list_attributes", Read),
    MmsReportAccessControlledObjects => (Mms, "report_access_controlled_objects", Read),
    MmsDeleteAccessControlList => (Mms, "delete_access_control_list", Config),
    MmsChangeAccessControl => (Mms, "change_access_control", Config),
    // UnconfirmedService choices (ISO 9506-2): reports from the server, counted as
    // responses.
    MmsInformationReport => (Mms, "information_report", Read),
    MmsUnsolicitedStatus => (Mms, "unsolicited_status", Diagnostic),
    MmsEventNotification => (Mms, "event_notification", Other),
    MmsUnknown => (Mms, "unknown", Other),

    // EtherNet/IP encapsulation commands (ODVA CIP Networks Library Vol. 2, table
    // 2-3.2). SendRRData and SendUnitData carry CIP: they are counted as the CIP service
    // they carry, and under their own names only when they carry none (a non-CIP
    // interface handle, an encapsulation error reply).
    EnipNop => (Enip, "nop", Other),
    EnipListServices => (Enip, "list_services", Diagnostic),
    EnipListIdentity => (Enip, "list_identity", Diagnostic),
    EnipListInterfaces => (Enip, "list_interfaces", Diagnostic),
    EnipRegisterSession => (Enip, "register_session", Other),
    EnipUnregisterSession => (Enip, "unregister_session", Other),
    EnipSendRrData => (Enip, "send_rr_data", Other),
    EnipSendUnitData => (Enip, "send_unit_data", Other),
    // CIP common services (ODVA CIP Networks Library Vol. 1, appendix A, table ).
    CipGetAttributesAll => (Enip, "get_attributes_all", Read),
    CipSetAttributesAll => (Enip, "set_attributes_all", Write),
    CipGetAttributeList => (Enip, "get_attribute_list", Read),
    CipSetAttributeList => (Enip, "set_attribute_list", Write),
    CipReset => (Enip, "reset", State),
    CipStart => (Enip, "start", State),
    CipStop => (Enip, "stop", State),
    CipCreate => (Enip, "create", Config),
    CipDelete => (Enip, "delete", Config),
    CipMultipleServicePacket => (Enip, "multiple_service_packet", Other),
    CipApplyAttributes => (Enip, "apply_attributes", Config),
    CipGetAttributeSingle => (Enip, "get_attribute_single", Read),
    CipSetAttributeSingle => (Enip, "set_attribute_single", Write),
    CipFindNextObjectInstance => (Enip, "find_next_object_instance", Read),
    CipRestore => (Enip, "restore", Config),
    CipSave => (Enip, "save", Config),
    // Service 0x17 "No Operation (NOP)": named in full, `nop` is the encapsulation's.
    CipNoOperation => (Enip, "no_operation", Other),
    CipGetMember => (Enip, "get_member", Read),
    CipSetMember => (Enip, "set_member", Write),
    CipInsertMember => (Enip, "insert_member", Write),
    CipRemoveMember => (Enip, "remove_member", Write),
    CipGroupSync => (Enip, "group_sync", Other),
    // Connection Manager object (class 0x06) services (Vol. 1, 3-5.5).
    CipForwardClose => (Enip, "forward_close", Other),
    CipUnconnectedSend => (Enip, "unconnected_send", Other),
    CipForwardOpen => (Enip, "forward_open", Other),
    CipLargeForwardOpen => (Enip, "large_forward_open", Other),
    CipGetConnectionData => (Enip, "get_connection_data", Diagnostic),
    CipSearchConnectionData => (Enip, "search_connection_data", Diagnostic),
    CipGetConnectionOwner => (Enip, "get_connection_owner", Diagnostic),
    // Logix tag services (Rockwell Automation publication 1756-PM020, "Logix 5000
    // Controllers Data Access"), class-specific codes on the other classes.
    CipReadTag => (Enip, "read_tag", Read),
    CipReadTagFragmented => (Enip, "read_tag_fragmented", Read),
    CipWriteTag => (Enip, "write_tag", Write),
    CipWriteTagFragmented => (Enip, "write_tag_fragmented", Write),
    CipReadModifyWriteTag => (Enip, "read_modify_write_tag", Write),
    CipGetInstanceAttributeList => (Enip, "get_instance_attribute_list", Read),
    // PCCC (DF1 commands of PLC-5/SLC/MicroLogix) tunnelled in CIP: it carries typed
    // reads and writes but also program download, mode change (run/program) and memory
    // clear, which a monitor cannot rule out without decoding PCCC; classed by the most
    // dangerous of them, as Modbus fc 90 (UMAS) is.
    CipExecutePccc => (Enip, "execute_pccc", Program),
    // Service codes of the vendor-specific (0x32-0x4A) and object class specific
    // (0x4B-0x63) ranges this table does not name.
    CipVendorSpecific => (Enip, "vendor_specific", Other),
    CipClassSpecific => (Enip, "class_specific", Other),
    EnipUnknown => (Enip, "unknown", Other),

    // BACnet (ANSI/ASHRAE 135-2020). Confirmed services, BACnetConfirmedServiceChoice
    // (clause 21): reads read; writes write; reinitialize_device state;
    // device_communication_control config; atomic_write_file program (files carry
    // firmware, programs and databases); create_object / delete_object config (they change
    // the device's object database); life_safety_operation control (silences and resets
    // life-safety points); notifications, private transfers, text messages and virtual
    // terminals other.
    BacnetAcknowledgeAlarm => (Bacnet, "acknowledge_alarm", Write),
    BacnetConfirmedCovNotification => (Bacnet, "confirmed_cov_notification", Other),
    BacnetConfirmedEventNotification => (Bacnet, "confirmed_event_notification", Other),
    BacnetGetAlarmSummary => (Bacnet, "get_alarm_summary", Read),
    BacnetGetEnrollmentSummary => (Bacnet, "get_enrollment_summary", Read),
    BacnetSubscribeCov => (Bacnet, "subscribe_cov", Read),
    BacnetAtomicReadFile => (Bacnet, "atomic_read_file", Read),
    BacnetAtomicWriteFile => (Bacnet, "atomic_write_file", Program),
    BacnetAddListElement => (Bacnet, "add_list_element", Write),
    BacnetRemoveListElement => (Bacnet, "remove_list_element", Write),
    BacnetCreateObject => (Bacnet, "create_object", Config),
    BacnetDeleteObject => (Bacnet, "delete_object", Config),
    BacnetReadProperty => (Bacnet, "read_property", Read),
    BacnetReadPropertyConditional => (Bacnet, "read_property_conditional", Read),
    BacnetReadPropertyMultiple => (Bacnet, "read_property_multiple", Read),
    BacnetWriteProperty => (Bacnet, "write_property", Write),
    BacnetWritePropertyMultiple => (Bacnet, "write_property_multiple", Write),
    BacnetDeviceCommunicationControl => (Bacnet, "device_communication_control", Config),
    BacnetConfirmedPrivateTransfer => (Bacnet, "confirmed_private_transfer", Other),
    BacnetConfirmedTextMessage => (Bacnet, "confirmed_text_message", Other),
    BacnetReinitializeDevice => (Bacnet, "reinitialize_device", State),
    BacnetVtOpen => (Bacnet, "vt_open", Other),
    BacnetVtClose => (Bacnet, "vt_close", Other),
    BacnetVtData => (Bacnet, "vt_data", Other),
    BacnetAuthenticate => (Bacnet, "authenticate", Other),
    BacnetRequestKey => (Bacnet, "request_key", Other),
    BacnetReadRange => (Bacnet, "read_range", Read),
    BacnetLifeSafetyOperation => (Bacnet, "life_safety_operation", Control),
    BacnetSubscribeCovProperty => (Bacnet, "subscribe_cov_property", Read),
    BacnetGetEventInformation => (Bacnet, "get_event_information", Read),
    BacnetSubscribeCovPropertyMultiple => (Bacnet, "subscribe_cov_property_multiple", Read),
    BacnetConfirmedCovNotificationMultiple => (Bacnet, "confirmed_cov_notification_multiple", Other),
    BacnetConfirmedAuditNotification => (Bacnet, "confirmed_audit_notification", Other),
    BacnetAuditLogQuery => (Bacnet, "audit_log_query", Read),
    // Unconfirmed services, BACnetUnconfirmedServiceChoice. i_am and i_have answer who_is
    // and who_has and are counted as responses; discovery is other; the time
    // synchronizations and you_are (which assigns a device its identifier) config;
    // write_group write.
    BacnetIAm => (Bacnet, "i_am", Other),
    BacnetIHave => (Bacnet, "i_have", Other),
    BacnetUnconfirmedCovNotification => (Bacnet, "unconfirmed_cov_notification", Other),
    BacnetUnconfirmedEventNotification => (Bacnet, "unconfirmed_event_notification", Other),
    BacnetUnconfirmedPrivateTransfer => (Bacnet, "unconfirmed_private_transfer", Other),
    BacnetUnconfirmedTextMessage => (Bacnet, "unconfirmed_text_message", Other),
    BacnetTimeSynchronization => (Bacnet, "time_synchronization", Config),
    BacnetWhoHas => (Bacnet, "who_has", Other),
    BacnetWhoIs => (Bacnet, "who_is", Other),
    BacnetUtcTimeSynchronization => (Bacnet, "utc_time_synchronization", Config),
    BacnetWriteGroup => (Bacnet, "write_group", Write),
    BacnetUnconfirmedCovNotificationMultiple => (Bacnet, "unconfirmed_cov_notification_multiple", Other),
    BacnetUnconfirmedAuditNotification => (Bacnet, "unconfirmed_audit_notification", Other),
    BacnetWhoAmI => (Bacnet, "who_am_i", Other),
    BacnetYouAre => (Bacnet, "you_are", Config),
    // Network layer messages (clause 6.2.4). Those that rewrite routing, connections or
    // keys are config; the rest other.
    BacnetWhoIsRouterToNetwork => (Bacnet, "who_is_router_to_network", Other),
    BacnetIAmRouterToNetwork => (Bacnet, "i_am_router_to_network", Other),
    BacnetICouldBeRouterToNetwork => (Bacnet, "i_could_be_router_to_network", Other),
    BacnetRejectMessageToNetwork => (Bacnet, "reject_message_to_network", Other),
    BacnetRouterBusyToNetwork => (Bacnet, "router_busy_to_network", Other),
    BacnetRouterAvailableToNetwork => (Bacnet, "router_available_to_network", Other),
    BacnetInitializeRoutingTable => (Bacnet, "initialize_routing_table", Config),
    BacnetEstablishConnectionToNetwork => (Bacnet, "establish_connection_to_network", Config),
    BacnetDisconnectConnectionToNetwork => (Bacnet, "disconnect_connection_to_network", Config),
    BacnetChallengeRequest => (Bacnet, "challenge_request", Other),
    BacnetSecurityPayload => (Bacnet, "security_payload", Other),
    BacnetSecurityResponse => (Bacnet, "security_response", Other),
    BacnetRequestKeyUpdate => (Bacnet, "request_key_update", Other),
    BacnetUpdateKeySet => (Bacnet, "update_key_set", Config),
    BacnetUpdateDistributionKey => (Bacnet, "update_distribution_key", Config),
    BacnetRequestMasterKey => (Bacnet, "request_master_key", Other),
    BacnetSetMasterKey => (Bacnet, "set_master_key", Config),
    BacnetWhatIsNetworkNumber => (Bacnet, "what_is_network_number", Other),
    BacnetNetworkNumberIs => (Bacnet, "network_number_is", Other),
    BacnetProprietaryNetworkMessage => (Bacnet, "proprietary_network_message", Other),
    // BACnet/IP virtual link control functions that carry no NPDU (Annex J.2): the
    // broadcast and foreign device tables of a BBMD. Writing or deleting entries and
    // registering as a foreign device are config (they change who receives broadcasts).
    BacnetBvlcResult => (Bacnet, "bvlc_result", Other),
    BacnetWriteBroadcastDistributionTable => (Bacnet, "write_broadcast_distribution_table", Config),
    BacnetReadBroadcastDistributionTable => (Bacnet, "read_broadcast_distribution_table", Read),
    BacnetRegisterForeignDevice => (Bacnet, "register_foreign_device", Config),
    BacnetReadForeignDeviceTable => (Bacnet, "read_foreign_device_table", Read),
    BacnetDeleteForeignDeviceTableEntry => (Bacnet, "delete_foreign_device_table_entry", Config),
    BacnetUnknown => (Bacnet, "unknown", Other),

    // OPC UA binary (IEC 62541-6) message types and services.
    // OPC 10000-6 7.1.2: the Hello message (HEL, answered by ACK) opens the connection.
    OpcuaHello => (Opcua, "hello", Other),
    // OPC 10000-4 clause 5, services by service set; the request and response type ids
    // are those of OPC 10000-6 NodeIds.csv (`<Service>Request_Encoding_DefaultBinary`).
    // Discovery (5.4).
    OpcuaFindServers => (Opcua, "find_servers", Other),
    OpcuaFindServersOnNetwork => (Opcua, "find_servers_on_network", Other),
    OpcuaGetEndpoints => (Opcua, "get_endpoints", Other),
    OpcuaRegisterServer => (Opcua, "register_server", Other),
    OpcuaRegisterServer2 => (Opcua, "register_server2", Other),
    // SecureChannel (5.5): OPN and CLO messages.
    OpcuaOpenSecureChannel => (Opcua, "open_secure_channel", Other),
    OpcuaCloseSecureChannel => (Opcua, "close_secure_channel", Other),
    // Session (5.6).
    OpcuaCreateSession => (Opcua, "create_session", Other),
    OpcuaActivateSession => (Opcua, "activate_session", Other),
    OpcuaCloseSession => (Opcua, "close_session", Other),
    OpcuaCancel => (Opcua, "cancel", Other),
    // NodeManagement (5.7): changes the server's address space.
    OpcuaAddNodes => (Opcua, "add_nodes", Config),
    OpcuaAddReferences => (Opcua, "add_references", Config),
    OpcuaDeleteNodes => (Opcua, "delete_nodes", Config),
    OpcuaDeleteReferences => (Opcua, "delete_references", Config),
    // View (5.8).
    OpcuaBrowse => (Opcua, "browse", Read),
    OpcuaBrowseNext => (Opcua, "browse_next", Read),
    OpcuaTranslateBrowsePathsToNodeIds => (Opcua, "translate_browse_paths_to_node_ids", Read),
    OpcuaRegisterNodes => (Opcua, "register_nodes", Other),
    OpcuaUnregisterNodes => (Opcua, "unregister_nodes", Other),
    // Query (5.9).
    OpcuaQueryFirst => (Opcua, "query_first", Read),
    OpcuaQueryNext => (Opcua, "query_next", Read),
    // Attribute (5.10).
    OpcuaRead => (Opcua, "read", Read),
    OpcuaHistoryRead => (Opcua, "history_read", Read),
    OpcuaWrite => (Opcua, "write", Write),
    OpcuaHistoryUpdate => (Opcua, "history_update", Write),
    // Method (5.11): a method call operates the process.
    OpcuaCall => (Opcua, "call", Control),
    // MonitoredItem (5.12) and Subscription (5.13).
    OpcuaCreateMonitoredItems => (Opcua, "create_monitored_items", Other),
    OpcuaModifyMonitoredItems => (Opcua, "modify_monitored_items", Other),
    OpcuaSetMonitoringMode => (Opcua, "set_monitoring_mode", Other),
    OpcuaSetTriggering => (Opcua, "set_triggering", Other),
    OpcuaDeleteMonitoredItems => (Opcua, "delete_monitored_items", Other),
    OpcuaCreateSubscription => (Opcua, "create_subscription", Other),
    OpcuaModifySubscription => (Opcua, "modify_subscription", Other),
    OpcuaSetPublishingMode => (Opcua, "set_publishing_mode", Other),
    OpcuaPublish => (Opcua, "publish", Other),
    OpcuaRepublish => (Opcua, "republish", Other),
    OpcuaTransferSubscriptions => (Opcua, "transfer_subscriptions", Other),
    OpcuaDeleteSubscriptions => (Opcua, "delete_subscriptions", Other),
    OpcuaUnknown => (Opcua, "unknown", Other),

    // MQTT 3.1.1 / 5 control packets.
    // OASIS MQTT 3.1.1 2.2.1 and MQTT 5.0 2.1.2 (control packet types), one command a
    // packet type. A PUBLISH sets values wherever a controller subscribes: write.
    MqttConnect => (Mqtt, "connect", Other),
    MqttConnack => (Mqtt, "connack", Other),
    MqttPublish => (Mqtt, "publish", Write),
    MqttPuback => (Mqtt, "puback", Other),
    MqttPubrec => (Mqtt, "pubrec", Other),
    MqttPubrel => (Mqtt, "pubrel", Other),
    MqttPubcomp => (Mqtt, "pubcomp", Other),
    MqttSubscribe => (Mqtt, "subscribe", Read),
    MqttSuback => (Mqtt, "suback", Other),
    MqttUnsubscribe => (Mqtt, "unsubscribe", Other),
    MqttUnsuback => (Mqtt, "unsuback", Other),
    MqttPingreq => (Mqtt, "pingreq", Other),
    MqttPingresp => (Mqtt, "pingresp", Other),
    MqttDisconnect => (Mqtt, "disconnect", Other),
    // MQTT 5.0 only (3.15): extended authentication exchange.
    MqttAuth => (Mqtt, "auth", Other),
    MqttUnknown => (Mqtt, "unknown", Other),

    // GOOSE and sampled values (IEC 61850-7-2 SendGOOSEMessage / SendMSVMessage, mapped
    // by IEC 61850-8-1 and -9-2). Publications, not requests: counted as responses. A
    // GOOSE message with sqNum 0 is the first of a new state (stNum incremented), which
    // subscribers act on (trips, interlocks); the others are retransmissions.
    GoosePublish => (Goose, "publish", Read),
    GooseStateChange => (Goose, "state_change", Control),
    GooseUnknown => (Goose, "unknown", Other),
    SvSample => (Sv, "sample", Read),
    SvUnknown => (Sv, "unknown", Other),

    // PROFINET (IEC 61158-5/6-10): DCP services, RT alarms, and the IO context manager's
    // operations over DCE/RPC. A DCP set carrying the control option "reset to factory"
    // is its own command: it wipes the device's parameters.
    ProfinetIdentify => (Profinet, "identify", Diagnostic),
    ProfinetHello => (Profinet, "hello", Other),
    ProfinetGet => (Profinet, "get", Read),
    ProfinetSet => (Profinet, "set", Config),
    ProfinetResetToFactory => (Profinet, "reset_to_factory", State),
    ProfinetAlarm => (Profinet, "alarm", Other),
    ProfinetConnect => (Profinet, "connect", Config),
    ProfinetRelease => (Profinet, "release", State),
    ProfinetRead => (Profinet, "read", Read),
    ProfinetWrite => (Profinet, "write", Write),
    ProfinetControl => (Profinet, "control", Control),
    ProfinetReadImplicit => (Profinet, "read_implicit", Read),
    ProfinetUnknown => (Profinet, "unknown", Other),
}

impl Cmd {
    pub const fn index(self) -> usize {
        self as usize
    }
    pub const fn proto(self) -> Proto {
        self.info().proto
    }
    pub const fn name(self) -> &'static str {
        self.info().name
    }
    pub const fn class(self) -> Class {
        self.info().class
    }

    /// `protocol/command`, the key of `ics_commands` and `ics_responses`.
    pub fn key(self) -> String {
        format!("{}/{}", self.proto().name(), self.name())
    }

    /// Looks a command up by protocol and name (for policies and tests).
    pub fn find(proto: Proto, name: &str) -> Option<Cmd> {
        Cmd::ALL
            .iter()
            .copied()
            .find(|c| c.proto() == proto && c.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_per_protocol_and_snake_case() {
        let mut seen = HashSet::new();
        for (i, c) in Cmd::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert!(seen.insert((c.proto(), c.name())), "duplicate {}", c.key());
            assert!(
                c.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{} is not snake_case",
                c.key()
            );
            assert_eq!(Cmd::find(c.proto(), c.name()), Some(*c));
        }
    }

    #[test]
    fn design_examples_have_their_classes() {
        let class = |p, n| Cmd::find(p, n).map(Cmd::class);
        assert_eq!(
            class(Proto::Modbus, "write_single_register"),
            Some(Class::Write)
        );
        assert_eq!(class(Proto::Dnp3, "operate"), Some(Class::Control));
        assert_eq!(class(Proto::Dnp3, "cold_restart"), Some(Class::State));
        assert_eq!(class(Proto::Iec104, "c_sc_na_1"), Some(Class::Control));
        assert_eq!(class(Proto::Iec104, "c_rp_na_1"), Some(Class::State));
        assert_eq!(class(Proto::S7comm, "plc_stop"), Some(Class::State));
        assert_eq!(class(Proto::S7comm, "download_block"), Some(Class::Program));
        assert_eq!(class(Proto::Bacnet, "read_property"), Some(Class::Read));
        assert_eq!(class(Proto::Bacnet, "write_property"), Some(Class::Write));
        assert_eq!(
            class(Proto::Bacnet, "reinitialize_device"),
            Some(Class::State)
        );
        assert_eq!(
            class(Proto::Bacnet, "device_communication_control"),
            Some(Class::Config)
        );
        assert_eq!(
            class(Proto::Enip, "get_attribute_single"),
            Some(Class::Read)
        );
        assert_eq!(
            class(Proto::Enip, "set_attribute_single"),
            Some(Class::Write)
        );
        assert_eq!(class(Proto::Enip, "stop"), Some(Class::State));
        assert_eq!(class(Proto::Enip, "reset"), Some(Class::State));
        assert_eq!(class(Proto::Enip, "write_tag"), Some(Class::Write));
        assert_eq!(class(Proto::Enip, "forward_open"), Some(Class::Other));
        assert_eq!(class(Proto::Profinet, "set"), Some(Class::Config));
        for dcp in ["identify", "get", "set", "hello"] {
            assert!(class(Proto::Profinet, dcp).is_some(), "{dcp}");
        }
    }
}
