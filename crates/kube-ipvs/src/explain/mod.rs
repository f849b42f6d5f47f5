//! `kube-ipvs explain SERVICE`: "why can't I reach my Service?" answered on the node.
//!
//! The troubleshooting checklist every kube-proxy guide prints (does the Service exist and have
//! ready endpoints, do the ports match, is the proxy syncing, are the rules in the kernel, is
//! the NodePort served here, is the load spread, is conntrack full) as pure checks over inputs
//! gathered once:
//!
//! ```text
//! gather (I/O: API server or dump, config, netlink, agent endpoints and files, /proc, probes)
//!     -> Inputs -> Subject (the Service planned as the agent plans it)
//!     -> checks (pure, one Check each: verdict, summary, reason, fix) -> Report -> text / JSON
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`inputs`] | [`Inputs`]: everything the checks read, plain data |
//! | [`gather`] | filling [`Inputs`] on a node (read-only) |
//! | [`subject`] | the Service through the planner: validated form, slices, desired state |
//! | `checks` | the checks, in the order a person goes through them |
//! | [`report`] | [`Check`], [`Verdict`], [`Report`] and its exit status |
//! | [`render`] | the text report and the JSON |

mod checks;
pub mod gather;
pub mod inputs;
pub mod render;
pub mod report;
pub mod subject;

pub use checks::probe_targets;
pub use inputs::{Inputs, Target};
pub use report::{Check, Report, Verdict};

use subject::Subject;

/// Runs every check over the inputs.
pub fn explain(inputs: &Inputs) -> Report {
    let subject = inputs
        .cluster
        .as_ref()
        .ok()
        .and_then(|c| Subject::derive(c, &inputs.settings.planner));
    let ctx = checks::Ctx {
        inputs,
        subject: subject.as_ref(),
    };
    Report {
        target: inputs.target.to_string(),
        service: subject.as_ref().map(|s| s.key.to_string()),
        resolved: inputs
            .resolved
            .as_ref()
            .map(|r| format!("{} (found in {})", r.owner, r.via)),
        node: inputs.settings.planner.node_name.to_string(),
        checks: checks::all(&ctx),
    }
}
