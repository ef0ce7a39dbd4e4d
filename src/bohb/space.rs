//! Search spaces and their unit-cube encoding.
//!
//! Every non-constant parameter is one dimension of the model vector:
//! integers and floats (linear or log scale) map to [0, 1]; categorical and
//! ordinal parameters map to their choice index. Constants are part of every
//! configuration but never a model dimension, so they do not delay the model.
//!
//! A parameter with a [`Condition`] is active only while an earlier
//! categorical or ordinal parameter takes one of the given values; inactive
//! parameters are left out of the configuration and encode as NaN, which the
//! model imputes as hpbandster does (see `model::impute_inactive`).

use super::rng::Rng;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// One hyperparameter value as it appears in a configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
}

impl Value {
    /// The value as a number (integers widen); `None` for strings.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(_) => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:.6}"),
            Value::Str(s) => write!(f, "{s}"),
        }
    }
}

/// A configuration: parameter name to value.
pub type Config = BTreeMap<String, Value>;

/// The kind and range of one hyperparameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Domain {
    /// Integers `low..=high`; on a log scale when `log` (then `low >= 1`).
    Int {
        low: i64,
        high: i64,
        #[serde(default)]
        log: bool,
    },
    /// Reals in `[low, high]`; on a log scale when `log` (then `low > 0`).
    Float {
        low: f64,
        high: f64,
        #[serde(default)]
        log: bool,
    },
    /// Unordered choices.
    Categorical { choices: Vec<Value> },
    /// Ordered choices (neighbours are similar).
    Ordinal { values: Vec<Value> },
    /// A fixed value, carried in every configuration.
    Constant { value: Value },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    #[serde(flatten)]
    pub domain: Domain,
    /// Active only when this holds; `None` = always active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

/// `parent` (an earlier categorical or ordinal parameter) is active and
/// takes one of `values`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub parent: String,
    pub values: Vec<Value>,
}

/// How the model treats one dimension of the encoded vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DimKind {
    /// A value in [0, 1].
    Continuous,
    /// A choice index among `n` unordered choices.
    Categorical(usize),
    /// A choice index among `n` ordered values.
    Ordinal(usize),
}

/// An ordered list of parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Space {
    params: Vec<Param>,
}

fn invalid(msg: String) -> Error {
    Error::Invalid(msg)
}

impl Space {
    /// Builds a space, checking names are unique and every range is usable.
    pub fn new(params: Vec<Param>) -> Result<Self> {
        let mut seen = std::collections::BTreeSet::new();
        for p in &params {
            if !seen.insert(p.name.as_str()) {
                return Err(invalid(format!(
                    "search space: parameter {:?} appears twice",
                    p.name
                )));
            }
            let bad = |why: &str| invalid(format!("search space: parameter {:?}: {why}", p.name));
            match &p.domain {
                Domain::Int { low, high, log } => {
                    if low > high {
                        return Err(bad("low must not exceed high"));
                    }
                    if *log && *low < 1 {
                        return Err(bad("a log-scale integer needs low >= 1"));
                    }
                }
                Domain::Float { low, high, log } => {
                    if !(low.is_finite() && high.is_finite() && low <= high) {
                        return Err(bad("needs finite low <= high"));
                    }
                    if *log && *low <= 0.0 {
                        return Err(bad("a log-scale float needs low > 0"));
                    }
                }
                Domain::Categorical { choices } if choices.is_empty() => {
                    return Err(bad("needs at least one choice"))
                }
                Domain::Ordinal { values } if values.is_empty() => {
                    return Err(bad("needs at least one value"))
                }
                _ => {}
            }
            if let Some(condition) = &p.condition {
                let parent = params
                    .iter()
                    .take_while(|q| q.name != p.name)
                    .find(|q| q.name == condition.parent)
                    .ok_or_else(|| {
                        bad(&format!(
                            "its condition's parent {:?} must be an earlier parameter",
                            condition.parent
                        ))
                    })?;
                let choices = match &parent.domain {
                    Domain::Categorical { choices } | Domain::Ordinal { values: choices } => {
                        choices
                    }
                    _ => {
                        return Err(bad(&format!(
                            "its condition's parent {:?} must be categorical or ordinal",
                            condition.parent
                        )))
                    }
                };
                if condition.values.is_empty() {
                    return Err(bad("its condition needs at least one value"));
                }
                if let Some(v) = condition.values.iter().find(|v| !choices.contains(v)) {
                    return Err(bad(&format!(
                        "its condition's value {v} is not a choice of {:?}",
                        condition.parent
                    )));
                }
            }
        }
        Ok(Space { params })
    }

    /// Whether `p` is active in `config`, whose earlier parameters are set
    /// (an inactive parent is absent, which makes its children inactive).
    fn is_active(p: &Param, config: &Config) -> bool {
        p.condition
            .as_ref()
            .is_none_or(|c| config.get(&c.parent).is_some_and(|v| c.values.contains(v)))
    }

    /// Reads a JSON space file: an array of
    /// `{"name": .., "type": "int"|"float"|"categorical"|"ordinal"|"constant", ..}`,
    /// each with an optional `"condition": {"parent": .., "values": [..]}`.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("{}: cannot read search space: {e}", path.display())))?;
        Self::from_json_str(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))
    }

    pub fn from_json_str(text: &str) -> Result<Self> {
        let params: Vec<Param> = serde_json::from_str(text).map_err(|e| {
            invalid(format!(
                "line {}, column {}: invalid search space ({e}); expected an array of \
                 {{\"name\", \"type\": int|float|categorical|ordinal|constant, ...}}",
                e.line(),
                e.column()
            ))
        })?;
        Self::new(params)
    }

    /// The default ConvFormerNet space of the tuning issue.
    pub fn convformer_default() -> Self {
        let int = |name: &str, low, high| Param {
            name: name.into(),
            domain: Domain::Int {
                low,
                high,
                log: false,
            },
            condition: None,
        };
        Space::new(vec![
            int("conv_filters", 16, 64),
            int("num_heads", 1, 8),
            int("ff_dim", 32, 256),
            Param {
                name: "dropout_rate".into(),
                domain: Domain::Float {
                    low: 0.0,
                    high: 0.5,
                    log: false,
                },
                condition: None,
            },
            Param {
                name: "learning_rate".into(),
                domain: Domain::Float {
                    low: 1e-4,
                    high: 1e-2,
                    log: true,
                },
                condition: None,
            },
        ])
        .expect("the default space is valid")
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Model dimensions, in parameter order, constants left out.
    pub fn dims(&self) -> Vec<DimKind> {
        self.params
            .iter()
            .filter_map(|p| match &p.domain {
                Domain::Int { .. } | Domain::Float { .. } => Some(DimKind::Continuous),
                Domain::Categorical { choices } => Some(DimKind::Categorical(choices.len())),
                Domain::Ordinal { values } => Some(DimKind::Ordinal(values.len())),
                Domain::Constant { .. } => None,
            })
            .collect()
    }

    /// A configuration drawn uniformly from the unit cube.
    pub fn sample_uniform(&self, rng: &mut Rng) -> Config {
        let vector: Vec<f64> = self
            .dims()
            .iter()
            .map(|d| match d {
                DimKind::Continuous => rng.uniform(),
                DimKind::Categorical(n) | DimKind::Ordinal(n) => rng.below(*n) as f64,
            })
            .collect();
        self.decode(&vector)
    }

    /// Maps a model vector (one entry per dimension) to a configuration;
    /// continuous entries are clamped to [0, 1], indices rounded and clamped,
    /// inactive parameters left out.
    pub fn decode(&self, vector: &[f64]) -> Config {
        let mut it = vector.iter().copied();
        let mut config = Config::new();
        for p in &self.params {
            let value = match &p.domain {
                Domain::Constant { value } => value.clone(),
                Domain::Int { low, high, log } => {
                    let u = it.next().expect("vector has one entry per dimension");
                    let (a, b) = int_edges(*low, *high, *log);
                    let x = a + u.clamp(0.0, 1.0) * (b - a);
                    let x = if *log { x.exp() } else { x };
                    Value::Int((x.round() as i64).clamp(*low, *high))
                }
                Domain::Float { low, high, log } => {
                    let u = it
                        .next()
                        .expect("vector has one entry per dimension")
                        .clamp(0.0, 1.0);
                    Value::Float(if *log {
                        (low.ln() + u * (high.ln() - low.ln()))
                            .exp()
                            .clamp(*low, *high)
                    } else {
                        low + u * (high - low)
                    })
                }
                Domain::Categorical { choices: list } | Domain::Ordinal { values: list } => {
                    let i = it.next().expect("vector has one entry per dimension");
                    list[(i.round().max(0.0) as usize).min(list.len() - 1)].clone()
                }
            };
            if Self::is_active(p, &config) {
                config.insert(p.name.clone(), value);
            }
        }
        config
    }

    /// Maps a configuration to its model vector, NaN for inactive
    /// parameters; errors name the parameter.
    pub fn encode(&self, config: &Config) -> Result<Vec<f64>> {
        let mut vector = Vec::with_capacity(self.params.len());
        for p in &self.params {
            if !Self::is_active(p, config) {
                if config.contains_key(&p.name) {
                    return Err(invalid(format!(
                        "configuration sets parameter {:?}, which its condition makes inactive",
                        p.name
                    )));
                }
                if !matches!(p.domain, Domain::Constant { .. }) {
                    vector.push(f64::NAN);
                }
                continue;
            }
            let value = config
                .get(&p.name)
                .ok_or_else(|| invalid(format!("configuration lacks parameter {:?}", p.name)))?;
            let bad = || {
                invalid(format!(
                    "parameter {:?}: value {value} is outside its domain",
                    p.name
                ))
            };
            match &p.domain {
                Domain::Constant { .. } => {}
                Domain::Int { low, high, log } => {
                    let v = value
                        .as_i64()
                        .filter(|v| (low..=high).contains(&v))
                        .ok_or_else(bad)?;
                    let (a, b) = int_edges(*low, *high, *log);
                    let x = if *log { (v as f64).ln() } else { v as f64 };
                    vector.push(if b > a { (x - a) / (b - a) } else { 0.5 });
                }
                Domain::Float { low, high, log } => {
                    let v = value
                        .as_f64()
                        .filter(|v| (*low..=*high).contains(v))
                        .ok_or_else(bad)?;
                    vector.push(if high == low {
                        0.5
                    } else if *log {
                        (v.ln() - low.ln()) / (high.ln() - low.ln())
                    } else {
                        (v - low) / (high - low)
                    });
                }
                Domain::Categorical { choices: list } | Domain::Ordinal { values: list } => {
                    let i = list.iter().position(|c| c == value).ok_or_else(bad)?;
                    vector.push(i as f64);
                }
            }
        }
        Ok(vector)
    }
}

/// Bin edges of an integer range in (possibly log) space: each integer owns an
/// equal-width bin, so uniform unit values give every integer the same chance.
fn int_edges(low: i64, high: i64, log: bool) -> (f64, f64) {
    let (a, b) = (low as f64 - 0.5, high as f64 + 0.5);
    if log {
        (a.max(0.5).ln(), b.ln())
    } else {
        (a, b)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn mixed() -> Space {
        Space::from_json_str(
            r#"[
            {"name": "n", "type": "int", "low": 2, "high": 5},
            {"name": "lr", "type": "float", "low": 1e-4, "high": 1e-2, "log": true},
            {"name": "act", "type": "categorical", "choices": ["relu", "gelu", "tanh"]},
            {"name": "k", "type": "ordinal", "values": [3, 5, 7]},
            {"name": "tag", "type": "constant", "value": "x"},
            {"name": "m", "type": "int", "low": 1, "high": 1000, "log": true}
        ]"#,
        )
        .unwrap()
    }

    #[test]
    fn constants_are_not_dimensions() {
        let s = mixed();
        assert_eq!(
            s.dims(),
            vec![
                DimKind::Continuous,
                DimKind::Continuous,
                DimKind::Categorical(3),
                DimKind::Ordinal(3),
                DimKind::Continuous
            ]
        );
    }

    #[test]
    fn encode_decode_round_trips() {
        let s = mixed();
        let mut rng = Rng::new(1);
        for _ in 0..500 {
            let c = s.sample_uniform(&mut rng);
            assert_eq!(c["tag"], Value::Str("x".into()));
            let v = s.encode(&c).unwrap();
            assert!(v.iter().all(|x| x.is_finite()));
            let back = s.decode(&v);
            assert_eq!(back["n"], c["n"]);
            assert_eq!(back["m"], c["m"]);
            assert_eq!(back["act"], c["act"]);
            assert_eq!(back["k"], c["k"]);
            let (a, b) = (back["lr"].as_f64().unwrap(), c["lr"].as_f64().unwrap());
            assert!((a - b).abs() <= 1e-12 * b, "{a} vs {b}");
        }
    }

    #[test]
    fn uniform_integers_are_equally_likely_and_log_floats_spread_by_decade() {
        let s = mixed();
        let mut rng = Rng::new(2);
        let mut counts = [0usize; 4];
        let mut below_1e3 = 0;
        let n = 40_000;
        for _ in 0..n {
            let c = s.sample_uniform(&mut rng);
            counts[(c["n"].as_i64().unwrap() - 2) as usize] += 1;
            if c["lr"].as_f64().unwrap() < 1e-3 {
                below_1e3 += 1;
            }
        }
        for c in counts {
            assert!((c as f64 / n as f64 - 0.25).abs() < 0.01, "{counts:?}");
        }
        assert!((below_1e3 as f64 / n as f64 - 0.5).abs() < 0.01);
    }

    #[test]
    fn bad_spaces_and_configs_are_real_errors() {
        let e = Space::from_json_str(r#"[{"name": "a", "type": "int", "low": 5}]"#).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = Space::from_json_str(
            r#"[{"name": "a", "type": "float", "low": 0, "high": 1, "log": true}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("low > 0"), "{e}");
        let e = Space::from_json_str(
            r#"[{"name": "a", "type": "int", "low": 1, "high": 5, "lgo": true}]"#,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("lgo"),
            "a misspelt field is an error: {e}"
        );
        let e = Space::from_json_str(r#"[{"name": "a", "type": "integer", "low": 1, "high": 5}]"#)
            .unwrap_err();
        assert!(e.to_string().contains("integer"), "{e}");
        let s = mixed();
        let mut c = s.sample_uniform(&mut Rng::new(3));
        c.insert("n".into(), Value::Int(9));
        assert!(s.encode(&c).unwrap_err().to_string().contains("\"n\""));
        c.remove("n");
        assert!(s.encode(&c).unwrap_err().to_string().contains("lacks"));
    }

    #[test]
    fn default_convformer_space_matches_the_issue() {
        let s = Space::convformer_default();
        let names: Vec<&str> = s.params().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv_filters",
                "num_heads",
                "ff_dim",
                "dropout_rate",
                "learning_rate"
            ]
        );
        let mut rng = Rng::new(4);
        for _ in 0..200 {
            let c = s.sample_uniform(&mut rng);
            assert!((16..=64).contains(&c["conv_filters"].as_i64().unwrap()));
            assert!((1..=8).contains(&c["num_heads"].as_i64().unwrap()));
            assert!((32..=256).contains(&c["ff_dim"].as_i64().unwrap()));
            assert!((0.0..=0.5).contains(&c["dropout_rate"].as_f64().unwrap()));
            assert!((1e-4..=1e-2).contains(&c["learning_rate"].as_f64().unwrap()));
        }
    }

    /// optimizer in {sgd, adam}; momentum only for sgd; nesterov only when
    /// momentum is active (a chain).
    pub(crate) fn conditional() -> Space {
        Space::from_json_str(
            r#"[
            {"name": "optimizer", "type": "categorical", "choices": ["sgd", "adam"]},
            {"name": "momentum", "type": "float", "low": 0, "high": 1,
             "condition": {"parent": "optimizer", "values": ["sgd"]}},
            {"name": "schedule", "type": "categorical", "choices": ["cos", "step"],
             "condition": {"parent": "optimizer", "values": ["sgd"]}},
            {"name": "warmup", "type": "int", "low": 0, "high": 10,
             "condition": {"parent": "schedule", "values": ["cos"]}},
            {"name": "lr", "type": "float", "low": 0.001, "high": 0.1, "log": true}
        ]"#,
        )
        .unwrap()
    }

    #[test]
    fn conditional_parameters_appear_only_when_their_parent_allows() {
        let s = conditional();
        assert_eq!(
            s.dims().len(),
            5,
            "inactive or not, every parameter is a dimension"
        );
        let adam = s.decode(&[1.0, 0.3, 0.0, 0.5, 0.5]);
        let names = |c: &Config| c.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&adam), ["lr", "optimizer"]);
        let sgd_step = s.decode(&[0.0, 0.3, 1.0, 0.5, 0.5]);
        assert_eq!(
            names(&sgd_step),
            ["lr", "momentum", "optimizer", "schedule"]
        );
        let sgd_cos = s.decode(&[0.0, 0.3, 0.0, 0.5, 0.5]);
        assert_eq!(sgd_cos["warmup"], Value::Int(5));
        // Inactive dimensions encode as NaN; active ones round-trip.
        let v = s.encode(&adam).unwrap();
        assert!(v[1].is_nan() && v[2].is_nan() && v[3].is_nan());
        assert_eq!((v[0], v[4]), (1.0, 0.5));
        assert_eq!(s.decode(&s.encode(&sgd_cos).unwrap()), sgd_cos);
        // Uniform samples respect the conditions, and both branches occur.
        let mut rng = Rng::new(7);
        let mut branches = [0; 2];
        for _ in 0..200 {
            let c = s.sample_uniform(&mut rng);
            let sgd = c["optimizer"] == Value::Str("sgd".into());
            branches[sgd as usize] += 1;
            assert_eq!(c.contains_key("momentum"), sgd);
            let cos = c.get("schedule") == Some(&Value::Str("cos".into()));
            assert_eq!(c.contains_key("warmup"), cos);
        }
        assert!(branches.iter().all(|&n| n > 50), "{branches:?}");
        // An inactive parameter that is set is an error naming it.
        let mut bad = adam.clone();
        bad.insert("momentum".into(), Value::Float(0.5));
        assert!(s
            .encode(&bad)
            .unwrap_err()
            .to_string()
            .contains("\"momentum\""));
        // Serialised spaces keep their conditions.
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(Space::from_json_str(&json).unwrap(), s);
    }

    #[test]
    fn bad_conditions_are_errors_naming_the_problem() {
        let check = |json: &str, expected: &str| {
            let err = Space::from_json_str(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        };
        let cat = r#"{"name": "a", "type": "categorical", "choices": ["x", "y"]}"#;
        check(
            &format!(
                r#"[{{"name": "b", "type": "float", "low": 0, "high": 1, "condition": {{"parent": "a", "values": ["x"]}}}}, {cat}]"#
            ),
            "parent \"a\" must be an earlier parameter",
        );
        check(
            &format!(
                r#"[{cat}, {{"name": "b", "type": "float", "low": 0, "high": 1, "condition": {{"parent": "a", "values": ["z"]}}}}]"#
            ),
            "value z is not a choice of \"a\"",
        );
        check(
            r#"[{"name": "a", "type": "float", "low": 0, "high": 1}, {"name": "b", "type": "float", "low": 0, "high": 1, "condition": {"parent": "a", "values": [0.5]}}]"#,
            "must be categorical or ordinal",
        );
        check(
            &format!(
                r#"[{cat}, {{"name": "b", "type": "float", "low": 0, "high": 1, "condition": {{"parent": "a", "values": []}}}}]"#
            ),
            "at least one value",
        );
    }
}
