//! Mesh TLS: SPIFFE identities, certificate files, live store, verifiers and
//! the rustls configurations HBONE uses on both sides.

pub mod certs;
pub mod config;
pub mod identity;
pub mod layout;
pub mod san;
pub mod store;
pub mod verify;

pub use certs::Material;
pub use identity::Identity;
pub use layout::{CertPaths, LayoutError};
pub use store::CertStore;
