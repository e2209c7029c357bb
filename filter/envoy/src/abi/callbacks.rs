//! Envoy's callbacks the module imports (Envoy → module calls are in the hook files), declared
//! by us from abi.h @0199da4a as quoted in the ABI doc §5; every one is exported by 1.40.0.
//!
//! Envoy loads modules with `RTLD_NOW` (doc §2.3): a callback declared here that the binary
//! does not export fails the load, so only declare what is used (`envoy_symbols` checks it).
//! Signatures are not checked by anything: a mismatch is silent memory corruption (doc §9).

use std::ffi::c_void;

use super::types::{
    AttributeId, BodyType, EnvoyBuffer, HeaderType, HttpHeader, LogLevel, ModuleBuffer,
};

extern "C" {
    pub fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);
    pub fn envoy_dynamic_module_callback_http_get_header(
        fe: *mut c_void,
        kind: HeaderType,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        fe: *mut c_void,
        kind: HeaderType,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_headers(
        fe: *mut c_void,
        kind: HeaderType,
        result_headers: *mut HttpHeader,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_set_header(
        fe: *mut c_void,
        kind: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_add_header(
        fe: *mut c_void,
        kind: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_send_response(
        fe: *mut c_void,
        status_code: u32,
        headers: *mut HttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    pub fn envoy_dynamic_module_callback_http_set_dynamic_metadata_string(
        fe: *mut c_void,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        value: ModuleBuffer,
    );
    pub fn envoy_dynamic_module_callback_http_set_dynamic_metadata_string_batch(
        fe: *mut c_void,
        namespace: ModuleBuffer,
        entries: *const HttpHeader,
        entries_size: usize,
    );
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        fe: *mut c_void,
        id: AttributeId,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        fe: *mut c_void,
        id: AttributeId,
        result: *mut u64,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_filter_state_bytes(
        fe: *mut c_void,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_clear_route_cache(fe: *mut c_void);
    pub fn envoy_dynamic_module_callback_http_clear_route_cluster_cache(fe: *mut c_void);
    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        fe: *mut c_void,
        kind: BodyType,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        fe: *mut c_void,
        kind: BodyType,
        out: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config_envoy: *mut c_void,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_size: usize,
        counter_id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        fe: *mut c_void,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_size: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config_envoy: *mut c_void,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_size: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config_envoy: *mut c_void,
    ) -> *mut c_void;
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: *mut c_void,
        event_id: u64,
    );
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
        scheduler: *mut c_void,
    );
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_new(fe: *mut c_void) -> *mut c_void;
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_commit(
        scheduler: *mut c_void,
        event_id: u64,
    );
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler: *mut c_void);
    pub fn envoy_dynamic_module_callback_http_filter_continue_decoding(fe: *mut c_void);
    pub fn envoy_dynamic_module_callback_http_filter_http_callout(
        fe: *mut c_void,
        callout_id: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut HttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> u32;
}
