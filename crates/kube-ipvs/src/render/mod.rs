//! Text and JSON views: the `ipvsadm -Ln` layout (`kube-ipvs plan`, and `kube-ipvs list` later)
//! and the plan report.

mod ipvsadm;
mod order;
mod report;

pub use ipvsadm::{HEADER, TableRow, ipvsadm_table};
pub use report::{PlanReport, plan_json, plan_text};
