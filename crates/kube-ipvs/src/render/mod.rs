//! Text and JSON views: the `ipvsadm -Ln` layout of the planner's desired table (`kube-ipvs
//! plan`) and of the kernel's table (`kube-ipvs list`), and the plan report.

mod escape;
mod ipvsadm;
pub mod kernel_table;
mod order;
mod report;

pub use escape::{Escaped, escape};
pub use ipvsadm::{HEADER, TableRow, ipvsadm_table};
pub use kernel_table::{Annotation, Columns, JsonTable, ListFormat, json_table, kernel_table};
pub use report::{PlanReport, plan_json, plan_text};
