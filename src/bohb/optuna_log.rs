//! Optuna's journal operations (checked against optuna 4.6.0,
//! `optuna/storages/journal/_storage.py`): one JSON object per log entry with
//! an `op_code` and the writer's `worker_id`. Only what a BOHB study writes is
//! built here; reading is in `study`.

use super::space::{Config, Domain, Param, Space, Value};
use serde_json::{json, Map, Value as Json};
use std::time::{SystemTime, UNIX_EPOCH};

pub const CREATE_STUDY: u64 = 0;
pub const SET_STUDY_SYSTEM_ATTR: u64 = 3;
pub const CREATE_TRIAL: u64 = 4;
pub const SET_TRIAL_PARAM: u64 = 5;
pub const SET_TRIAL_STATE_VALUES: u64 = 6;
pub const SET_TRIAL_INTERMEDIATE_VALUE: u64 = 7;
pub const SET_TRIAL_USER_ATTR: u64 = 8;
pub const SET_TRIAL_SYSTEM_ATTR: u64 = 9;

/// Optuna's `TrialState` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrialState {
    Running = 0,
    Complete = 1,
    Fail = 3,
}

impl TrialState {
    pub fn from_code(code: u64) -> Option<TrialState> {
        match code {
            0 => Some(TrialState::Running),
            1 => Some(TrialState::Complete),
            3 => Some(TrialState::Fail),
            _ => None,
        }
    }
}

/// `StudyDirection.MINIMIZE`.
const MINIMIZE: u64 = 1;

pub fn create_study(worker: &str, name: &str) -> Json {
    json!({"op_code": CREATE_STUDY, "worker_id": worker, "study_name": name, "directions": [MINIMIZE]})
}

pub fn set_study_system_attr(worker: &str, key: &str, value: Json) -> Json {
    json!({"op_code": SET_STUDY_SYSTEM_ATTR, "worker_id": worker, "study_id": 0,
           "system_attr": {key: value}})
}

/// A RUNNING trial with its attributes; the parameters follow as
/// `SET_TRIAL_PARAM` entries, as Optuna's own `create_new_trial` + `suggest_*` write them.
pub fn create_running_trial(worker: &str, system_attrs: Json, user_attrs: Json) -> Json {
    json!({"op_code": CREATE_TRIAL, "worker_id": worker, "study_id": 0,
           "datetime_start": now_iso(), "system_attrs": system_attrs, "user_attrs": user_attrs})
}

/// A trial created already finished (a late result kept after its first
/// attempt was given up): params, distributions, value and intermediate value in one entry.
#[allow(clippy::too_many_arguments)]
pub fn create_finished_trial(
    worker: &str,
    space: &Space,
    config: &Config,
    system_attrs: Json,
    user_attrs: Json,
    state: TrialState,
    loss: Option<f64>,
    step: i64,
) -> Json {
    let mut params = Map::new();
    let mut distributions = Map::new();
    for (param, value) in active_params(space, config) {
        params.insert(param.name.clone(), internal_value(param, value));
        distributions.insert(param.name.clone(), Json::String(distribution_json(param)));
    }
    let mut entry = json!({"op_code": CREATE_TRIAL, "worker_id": worker, "study_id": 0,
        "datetime_start": now_iso(), "datetime_complete": now_iso(), "state": state as u64,
        "params": params, "distributions": distributions,
        "system_attrs": system_attrs, "user_attrs": user_attrs});
    if let Some(loss) = loss {
        entry["value"] = json!(loss);
        entry["values"] = json!([loss]);
        entry["intermediate_values"] = json!({step.to_string(): loss});
    }
    entry
}

/// One `SET_TRIAL_PARAM` per parameter active in `config`.
pub fn set_params(worker: &str, trial: usize, space: &Space, config: &Config) -> Vec<Json> {
    active_params(space, config)
        .map(|(param, value)| {
            json!({"op_code": SET_TRIAL_PARAM, "worker_id": worker, "trial_id": trial,
                   "param_name": param.name, "param_value_internal": internal_value(param, value),
                   "distribution": distribution_json(param)})
        })
        .collect()
}

pub fn set_state(worker: &str, trial: usize, state: TrialState, loss: Option<f64>) -> Json {
    json!({"op_code": SET_TRIAL_STATE_VALUES, "worker_id": worker, "trial_id": trial,
           "state": state as u64, "values": loss.map(|l| vec![l]), "datetime_complete": now_iso()})
}

pub fn set_intermediate(worker: &str, trial: usize, step: i64, loss: f64) -> Json {
    json!({"op_code": SET_TRIAL_INTERMEDIATE_VALUE, "worker_id": worker, "trial_id": trial,
           "step": step, "intermediate_value": loss})
}

pub fn set_user_attr(worker: &str, trial: usize, key: &str, value: Json) -> Json {
    json!({"op_code": SET_TRIAL_USER_ATTR, "worker_id": worker, "trial_id": trial,
           "user_attr": {key: value}})
}

pub fn set_system_attr(worker: &str, trial: usize, key: &str, value: Json) -> Json {
    json!({"op_code": SET_TRIAL_SYSTEM_ATTR, "worker_id": worker, "trial_id": trial,
           "system_attr": {key: value}})
}

fn active_params<'a>(
    space: &'a Space,
    config: &'a Config,
) -> impl Iterator<Item = (&'a Param, &'a Value)> + 'a {
    space
        .params()
        .iter()
        .filter_map(move |p| config.get(&p.name).map(|v| (p, v)))
}

/// `optuna.distributions.distribution_to_json`: a JSON text (a string inside the entry).
pub fn distribution_json(param: &Param) -> String {
    let (name, attributes) = match &param.domain {
        Domain::Int { low, high, log } => (
            "IntDistribution",
            json!({"log": log, "step": 1, "low": low, "high": high}),
        ),
        Domain::Float { low, high, log } => (
            "FloatDistribution",
            json!({"step": null, "low": low, "high": high, "log": log}),
        ),
        Domain::Categorical { choices } | Domain::Ordinal { values: choices } => {
            ("CategoricalDistribution", json!({ "choices": choices }))
        }
        Domain::Constant { value } => ("CategoricalDistribution", json!({ "choices": [value] })),
    };
    json!({"name": name, "attributes": attributes}).to_string()
}

/// Optuna's internal representation: numbers as they are, choices as their index.
fn internal_value(param: &Param, value: &Value) -> Json {
    match &param.domain {
        Domain::Categorical { choices } | Domain::Ordinal { values: choices } => {
            json!(choices.iter().position(|c| c == value).unwrap_or(0) as f64)
        }
        Domain::Constant { .. } => json!(0.0),
        _ => json!(value),
    }
}

/// `datetime.now().isoformat()` as Optuna writes it (naive; here UTC).
pub fn now_iso() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_788), (2026, 12, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn distributions_are_optuna_json_texts() {
        let p = Param {
            name: "lr".into(),
            domain: Domain::Float {
                low: 1e-4,
                high: 1e-2,
                log: true,
            },
            condition: None,
        };
        let parsed: Json = serde_json::from_str(&distribution_json(&p)).unwrap();
        assert_eq!(parsed["name"], "FloatDistribution");
        assert_eq!(parsed["attributes"]["log"], true);
        assert_eq!(parsed["attributes"]["low"], 1e-4);
        assert!(parsed["attributes"]["step"].is_null());
    }
}
