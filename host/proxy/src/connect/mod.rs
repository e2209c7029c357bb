//! One HBONE CONNECT: the tunnel handler (`handler`), protocol detection (`sniff`), the
//! destination guard, raw TCP relay with idle bounds, and the upstream byte stream.

pub mod guard;
pub mod handler;
pub mod idle;
pub mod io;
pub mod relay;
pub mod sniff;
