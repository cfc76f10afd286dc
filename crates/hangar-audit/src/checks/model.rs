//! placeholder until the family lands.

use crate::check::Check;

pub(crate) const CHECKS: &[Check] = &[];
