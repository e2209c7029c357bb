//! One HBONE CONNECT: resolved once into a `context`, checked by the destination `guard`, then
//! served by the `handler`: protocol detection (`sniff`), the HTTP path, or a raw TCP `relay`.

pub mod context;
pub mod guard;
pub mod handler;
pub mod idle;
pub mod relay;
pub mod sniff;
