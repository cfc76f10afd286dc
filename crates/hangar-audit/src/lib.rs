//! Hangar's audit: the check catalogue, framework mappings, waivers, the report and its
//! renderers.

pub mod check;
pub mod checks;
