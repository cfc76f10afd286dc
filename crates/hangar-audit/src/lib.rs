//! Hangar's audit: the check catalogue, framework mappings, waivers, the report and its
//! renderers.

pub mod catalogue_doc;
pub mod check;
pub mod checks;
pub mod cost;
pub mod date;
pub mod frameworks;
pub mod render;
pub mod report;
pub mod waivers;

pub use date::Date;
pub use report::{AuditOptions, Report, audit};
