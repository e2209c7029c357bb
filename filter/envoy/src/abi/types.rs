//! The C types of Envoy 1.40's dynamic-module ABI, declared by us from the interface facts
//! (abi.h @0199da4a as quoted in the ABI doc, §3, §5.4): buffers, headers and enum values.

use std::ffi::c_char;
use std::ptr;

use crate::stream::{self, Attribute, HeaderKind};

/// ABI version string of Envoy 1.40.0's dynamic modules (NUL-terminated; doc §2.1).
pub static ABI_VERSION: &[u8] = b"v0.2.0\0";

/// `envoy_dynamic_module_type_envoy_buffer`: memory owned by Envoy, valid during the hook.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl EnvoyBuffer {
    /// What Envoy overwrites when it has a value.
    pub const EMPTY: EnvoyBuffer = EnvoyBuffer {
        ptr: ptr::null(),
        length: 0,
    };
}

/// `envoy_dynamic_module_type_module_buffer`: memory owned by us, valid during the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl ModuleBuffer {
    /// Lends `s` for one call.
    pub fn of(s: &str) -> Self {
        Self::of_bytes(s.as_bytes())
    }

    /// Lends `b` for one call.
    pub fn of_bytes(b: &[u8]) -> Self {
        ModuleBuffer {
            ptr: b.as_ptr().cast(),
            length: b.len(),
        }
    }

    /// No value: `set_header` with it removes the header (doc §5.1, verified on 1.40).
    pub const NULL: ModuleBuffer = ModuleBuffer {
        ptr: ptr::null(),
        length: 0,
    };
}

/// `envoy_dynamic_module_type_{module,envoy}_http_header` and `..._module_key_value_pair`
/// (all three have this layout).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

impl HttpHeader {
    /// What Envoy overwrites when it fills a header array.
    pub const EMPTY: HttpHeader = HttpHeader {
        key_ptr: ptr::null(),
        key_length: 0,
        value_ptr: ptr::null(),
        value_length: 0,
    };

    /// Lends a key and a value of ours for one call.
    pub fn of(key: &str, value: &str) -> Self {
        HttpHeader {
            key_ptr: key.as_ptr().cast(),
            key_length: key.len(),
            value_ptr: value.as_ptr().cast(),
            value_length: value.len(),
        }
    }
}

/// `envoy_dynamic_module_type_http_header_type` (doc §3, common types).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderType {
    RequestHeader = 0,
    RequestTrailer = 1,
    ResponseHeader = 2,
    ResponseTrailer = 3,
}

/// `envoy_dynamic_module_type_http_body_type` (doc §3, common types).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    /// The data of the current body hook call.
    ReceivedRequestBody = 0,
    BufferedRequestBody = 1,
    ReceivedResponseBody = 2,
    BufferedResponseBody = 3,
}

/// `envoy_dynamic_module_type_log_level` (doc §3, common types).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
    Off = 6,
}

/// `envoy_dynamic_module_type_metrics_result::Success`; the others (MetricNotFound,
/// InvalidLabels, Frozen) are failures. Received as a plain `u32`: a C enum value out of a
/// Rust enum's range would be undefined behaviour.
pub const METRICS_SUCCESS: u32 = 0;
/// `envoy_dynamic_module_type_http_callout_init_result::Success` (a plain `u32`, as above).
pub const CALLOUT_SUCCESS: u32 = 0;

/// `envoy_dynamic_module_type_attribute_id`: positions in the C enum of abi.h @0199da4a (doc
/// §5.4). 24, 25, 29, 30, 31, 33 and 37 were checked by running Envoy 1.40.0; the rest are
/// read from the source. Envoy 1.40 appended further ids after `HealthCheck` whose numbers
/// are not verified, so they are not declared.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeId {
    RequestPath = 0,
    RequestUrlPath = 1,
    RequestHost = 2,
    RequestScheme = 3,
    RequestMethod = 4,
    RequestHeaders = 5,
    RequestReferer = 6,
    RequestUserAgent = 7,
    RequestTime = 8,
    RequestId = 9,
    RequestProtocol = 10,
    RequestQuery = 11,
    RequestDuration = 12,
    RequestSize = 13,
    RequestTotalSize = 14,
    ResponseCode = 15,
    ResponseCodeDetails = 16,
    ResponseFlags = 17,
    ResponseGrpcStatus = 18,
    ResponseHeaders = 19,
    ResponseTrailers = 20,
    ResponseSize = 21,
    ResponseTotalSize = 22,
    ResponseBackendLatency = 23,
    /// `source.address`; includes the port in 1.40 (`127.0.0.1:38278`).
    SourceAddress = 24,
    SourcePort = 25,
    DestinationAddress = 26,
    DestinationPort = 27,
    ConnectionId = 28,
    ConnectionMtls = 29,
    /// SNI; only set when the listener has `tls_inspector`.
    ConnectionRequestedServerName = 30,
    ConnectionTlsVersion = 31,
    ConnectionSubjectLocalCertificate = 32,
    ConnectionSubjectPeerCertificate = 33,
    ConnectionDnsSanLocalCertificate = 34,
    ConnectionDnsSanPeerCertificate = 35,
    ConnectionUriSanLocalCertificate = 36,
    /// The peer's SPIFFE id on an mTLS listener.
    ConnectionUriSanPeerCertificate = 37,
    ConnectionSha256PeerCertificateDigest = 38,
    ConnectionTransportFailureReason = 39,
    ConnectionTerminationDetails = 40,
    UpstreamAddress = 41,
    UpstreamPort = 42,
    UpstreamTlsVersion = 43,
    UpstreamSubjectLocalCertificate = 44,
    UpstreamSubjectPeerCertificate = 45,
    UpstreamDnsSanLocalCertificate = 46,
    UpstreamDnsSanPeerCertificate = 47,
    UpstreamUriSanLocalCertificate = 48,
    UpstreamUriSanPeerCertificate = 49,
    UpstreamSha256PeerCertificateDigest = 50,
    UpstreamLocalAddress = 51,
    UpstreamTransportFailureReason = 52,
    UpstreamRequestAttemptCount = 53,
    UpstreamCxPoolReadyDuration = 54,
    UpstreamLocality = 55,
    XdsNode = 56,
    XdsClusterName = 57,
    XdsClusterMetadata = 58,
    XdsListenerDirection = 59,
    XdsListenerMetadata = 60,
    XdsRouteName = 61,
    XdsRouteMetadata = 62,
    XdsVirtualHostName = 63,
    XdsVirtualHostMetadata = 64,
    XdsUpstreamHostMetadata = 65,
    XdsFilterChainName = 66,
    HealthCheck = 67,
}

impl AttributeId {
    /// Every declared id, in the C enum's order.
    pub const ALL: [AttributeId; 68] = {
        use AttributeId::*;
        [
            RequestPath,
            RequestUrlPath,
            RequestHost,
            RequestScheme,
            RequestMethod,
            RequestHeaders,
            RequestReferer,
            RequestUserAgent,
            RequestTime,
            RequestId,
            RequestProtocol,
            RequestQuery,
            RequestDuration,
            RequestSize,
            RequestTotalSize,
            ResponseCode,
            ResponseCodeDetails,
            ResponseFlags,
            ResponseGrpcStatus,
            ResponseHeaders,
            ResponseTrailers,
            ResponseSize,
            ResponseTotalSize,
            ResponseBackendLatency,
            SourceAddress,
            SourcePort,
            DestinationAddress,
            DestinationPort,
            ConnectionId,
            ConnectionMtls,
            ConnectionRequestedServerName,
            ConnectionTlsVersion,
            ConnectionSubjectLocalCertificate,
            ConnectionSubjectPeerCertificate,
            ConnectionDnsSanLocalCertificate,
            ConnectionDnsSanPeerCertificate,
            ConnectionUriSanLocalCertificate,
            ConnectionUriSanPeerCertificate,
            ConnectionSha256PeerCertificateDigest,
            ConnectionTransportFailureReason,
            ConnectionTerminationDetails,
            UpstreamAddress,
            UpstreamPort,
            UpstreamTlsVersion,
            UpstreamSubjectLocalCertificate,
            UpstreamSubjectPeerCertificate,
            UpstreamDnsSanLocalCertificate,
            UpstreamDnsSanPeerCertificate,
            UpstreamUriSanLocalCertificate,
            UpstreamUriSanPeerCertificate,
            UpstreamSha256PeerCertificateDigest,
            UpstreamLocalAddress,
            UpstreamTransportFailureReason,
            UpstreamRequestAttemptCount,
            UpstreamCxPoolReadyDuration,
            UpstreamLocality,
            XdsNode,
            XdsClusterName,
            XdsClusterMetadata,
            XdsListenerDirection,
            XdsListenerMetadata,
            XdsRouteName,
            XdsRouteMetadata,
            XdsVirtualHostName,
            XdsVirtualHostMetadata,
            XdsUpstreamHostMetadata,
            XdsFilterChainName,
            HealthCheck,
        ]
    };
}

impl From<Attribute> for AttributeId {
    fn from(a: Attribute) -> Self {
        match a {
            Attribute::SourceAddress => AttributeId::SourceAddress,
            Attribute::DestinationAddress => AttributeId::DestinationAddress,
            Attribute::PeerUriSan => AttributeId::ConnectionUriSanPeerCertificate,
            Attribute::RequestedServerName => AttributeId::ConnectionRequestedServerName,
            Attribute::ResponseCode => AttributeId::ResponseCode,
            Attribute::ResponseFlags => AttributeId::ResponseFlags,
            Attribute::RequestTotalSize => AttributeId::RequestTotalSize,
            Attribute::ResponseTotalSize => AttributeId::ResponseTotalSize,
            Attribute::UpstreamAddress => AttributeId::UpstreamAddress,
        }
    }
}

impl From<HeaderKind> for HeaderType {
    fn from(k: HeaderKind) -> Self {
        match k {
            HeaderKind::Request => HeaderType::RequestHeader,
            HeaderKind::Response => HeaderType::ResponseHeader,
        }
    }
}

impl From<stream::LogLevel> for LogLevel {
    fn from(l: stream::LogLevel) -> Self {
        use stream::LogLevel as L;
        match l {
            L::Trace => LogLevel::Trace,
            L::Debug => LogLevel::Debug,
            L::Info => LogLevel::Info,
            L::Warn => LogLevel::Warn,
            L::Error => LogLevel::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `envoy_dynamic_module_type_attribute_id` of Envoy 1.40, id by id, as listed in the ABI
    /// doc §5.4 (`/work/shared/docs/envoy-1.40-dynamic-module-abi.md`: the table of ids run
    /// against 1.40.0 and the "Other ids from the same enum" list).
    const ENVOY_1_40_ATTRIBUTE_IDS: [(u32, &str); 68] = [
        (0, "RequestPath"),
        (1, "RequestUrlPath"),
        (2, "RequestHost"),
        (3, "RequestScheme"),
        (4, "RequestMethod"),
        (5, "RequestHeaders"),
        (6, "RequestReferer"),
        (7, "RequestUserAgent"),
        (8, "RequestTime"),
        (9, "RequestId"),
        (10, "RequestProtocol"),
        (11, "RequestQuery"),
        (12, "RequestDuration"),
        (13, "RequestSize"),
        (14, "RequestTotalSize"),
        (15, "ResponseCode"),
        (16, "ResponseCodeDetails"),
        (17, "ResponseFlags"),
        (18, "ResponseGrpcStatus"),
        (19, "ResponseHeaders"),
        (20, "ResponseTrailers"),
        (21, "ResponseSize"),
        (22, "ResponseTotalSize"),
        (23, "ResponseBackendLatency"),
        (24, "SourceAddress"),
        (25, "SourcePort"),
        (26, "DestinationAddress"),
        (27, "DestinationPort"),
        (28, "ConnectionId"),
        (29, "ConnectionMtls"),
        (30, "ConnectionRequestedServerName"),
        (31, "ConnectionTlsVersion"),
        (32, "ConnectionSubjectLocalCertificate"),
        (33, "ConnectionSubjectPeerCertificate"),
        (34, "ConnectionDnsSanLocalCertificate"),
        (35, "ConnectionDnsSanPeerCertificate"),
        (36, "ConnectionUriSanLocalCertificate"),
        (37, "ConnectionUriSanPeerCertificate"),
        (38, "ConnectionSha256PeerCertificateDigest"),
        (39, "ConnectionTransportFailureReason"),
        (40, "ConnectionTerminationDetails"),
        (41, "UpstreamAddress"),
        (42, "UpstreamPort"),
        (43, "UpstreamTlsVersion"),
        (44, "UpstreamSubjectLocalCertificate"),
        (45, "UpstreamSubjectPeerCertificate"),
        (46, "UpstreamDnsSanLocalCertificate"),
        (47, "UpstreamDnsSanPeerCertificate"),
        (48, "UpstreamUriSanLocalCertificate"),
        (49, "UpstreamUriSanPeerCertificate"),
        (50, "UpstreamSha256PeerCertificateDigest"),
        (51, "UpstreamLocalAddress"),
        (52, "UpstreamTransportFailureReason"),
        (53, "UpstreamRequestAttemptCount"),
        (54, "UpstreamCxPoolReadyDuration"),
        (55, "UpstreamLocality"),
        (56, "XdsNode"),
        (57, "XdsClusterName"),
        (58, "XdsClusterMetadata"),
        (59, "XdsListenerDirection"),
        (60, "XdsListenerMetadata"),
        (61, "XdsRouteName"),
        (62, "XdsRouteMetadata"),
        (63, "XdsVirtualHostName"),
        (64, "XdsVirtualHostMetadata"),
        (65, "XdsUpstreamHostMetadata"),
        (66, "XdsFilterChainName"),
        (67, "HealthCheck"),
    ];

    #[test]
    fn attribute_ids_are_envoy_1_40_numbering() {
        for (id, (number, name)) in AttributeId::ALL.iter().zip(ENVOY_1_40_ATTRIBUTE_IDS) {
            assert_eq!(format!("{id:?}"), name, "id {number}");
            assert_eq!(*id as u32, number, "{name}");
        }
    }

    /// The four attributes the filter reads map to the ids verified by running 1.40.0.
    #[test]
    fn read_attributes_use_the_ids_run_against_envoy_1_40() {
        for (attr, number) in [
            (Attribute::SourceAddress, 24),
            (Attribute::DestinationAddress, 26),
            (Attribute::RequestedServerName, 30),
            (Attribute::PeerUriSan, 37),
            (Attribute::ResponseCode, 15),
            (Attribute::ResponseFlags, 17),
            (Attribute::RequestTotalSize, 14),
            (Attribute::ResponseTotalSize, 22),
            (Attribute::UpstreamAddress, 41),
        ] {
            assert_eq!(AttributeId::from(attr) as u32, number, "{attr:?}");
        }
    }

    #[test]
    fn header_types_and_log_levels_are_envoy_1_40_numbering() {
        assert_eq!(HeaderType::from(HeaderKind::Request) as u32, 0);
        assert_eq!(HeaderType::from(HeaderKind::Response) as u32, 2);
        assert_eq!(BodyType::ReceivedRequestBody as u32, 0);
        use stream::LogLevel as L;
        let levels = [L::Trace, L::Debug, L::Info, L::Warn, L::Error];
        for (n, l) in levels.into_iter().enumerate() {
            assert_eq!(LogLevel::from(l) as u32, n as u32, "{l:?}");
        }
    }

    /// The layouts Envoy reads and writes: two 16-byte buffers, a 32-byte header (x86-64 and
    /// aarch64, the platforms Envoy 1.40 ships for).
    #[test]
    fn buffer_layouts_match_the_c_structs() {
        use std::mem::{offset_of, size_of};
        let word = size_of::<usize>();
        assert_eq!(size_of::<EnvoyBuffer>(), 2 * word);
        assert_eq!(size_of::<ModuleBuffer>(), 2 * word);
        assert_eq!(size_of::<HttpHeader>(), 4 * word);
        assert_eq!(offset_of!(HttpHeader, value_ptr), 2 * word);
        assert_eq!(offset_of!(EnvoyBuffer, length), word);
    }
}
