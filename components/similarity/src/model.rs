//! The property-similarity model: its metadata (features, ranges, defaults, score calibration),
//! property validation and encoding, the ONNX network run by tract, and the score.
//!
//! Everything the model knows about its inputs comes from `models/ames-similarity.json`, the
//! file the training script writes next to the `.onnx`, so the two cannot drift apart.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};
use tract_onnx::prelude::*;

static METADATA_JSON: &str = include_str!("../../../models/ames-similarity.json");
static ONNX_BYTES: &[u8] = include_bytes!("../../../models/ames-similarity.onnx");

#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub name: String,
    pub version: String,
    pub input: Port,
    pub output: Port,
    pub score: Calibration,
    pub features: Vec<Feature>,
}

#[derive(Debug, Deserialize)]
pub struct Port {
    pub name: String,
    pub width: usize,
}

/// score = sigmoid(a + b * cosine(embedding_a, embedding_b)), fitted on validation pairs.
#[derive(Debug, Deserialize)]
pub struct Calibration {
    pub a: f64,
    pub b: f64,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FeatureKind {
    Number {
        #[serde(default)]
        integer: bool,
        minimum: f64,
        maximum: f64,
        default: Option<f64>,
        #[serde(default)]
        unit: Option<String>,
    },
    Category {
        categories: Vec<String>,
        default: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
pub struct Feature {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub required: bool,
    pub column: usize,
    #[serde(flatten)]
    pub kind: FeatureKind,
}

/// The model's metadata, parsed once per instance (it is compiled into the component).
pub fn metadata() -> &'static Metadata {
    static METADATA: OnceLock<Metadata> = OnceLock::new();
    METADATA.get_or_init(|| {
        serde_json::from_str(METADATA_JSON).expect("models/ames-similarity.json is valid")
    })
}

impl Metadata {
    /// `name@version`, the identity of the model in responses and cache keys.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// Validates a property object and encodes it as the network's input row. Errors name
    /// the field (`living_area: must be at least 300`).
    pub fn encode(&self, property: &Value) -> Result<Vec<f32>, Vec<(String, String)>> {
        let Some(object) = property.as_object() else {
            return Err(vec![(String::new(), "must be a JSON object".into())]);
        };
        let mut row = vec![0f32; self.input.width];
        let mut errors = Vec::new();
        for feature in &self.features {
            if let Err(detail) = feature.encode(object.get(&feature.name), &mut row) {
                errors.push((feature.name.clone(), detail));
            }
        }
        for key in object.keys() {
            if !self.features.iter().any(|feature| &feature.name == key) {
                errors.push((key.clone(), "is not a property field of this model".into()));
            }
        }
        if errors.is_empty() {
            Ok(row)
        } else {
            Err(errors)
        }
    }

    /// Whether a catalog item's attributes describe a property this model can embed.
    pub fn is_property(&self, attributes: &Map<String, Value>) -> bool {
        self.encode(&self.property_of(attributes)).is_ok()
    }

    /// The property fields of an item's attributes; other attributes are ignored, and so is a
    /// field set to null (a seller's "unknown": the model's default applies).
    pub fn property_of(&self, attributes: &Map<String, Value>) -> Value {
        Value::Object(
            attributes
                .iter()
                .filter(|(key, value)| {
                    !value.is_null() && self.features.iter().any(|f| &f.name == *key)
                })
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        )
    }

    /// The calibrated similarity of two unit embeddings.
    pub fn score(&self, a: &[f32], b: &[f32]) -> f64 {
        let cosine: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        1.0 / (1.0 + (-(self.score.a + self.score.b * cosine)).exp())
    }
}

impl Feature {
    fn encode(&self, value: Option<&Value>, row: &mut [f32]) -> Result<(), String> {
        // Absent takes the default; null is not a number, so it is refused like any other
        // non-number (listings' null attributes are dropped before they get here).
        let value = match value {
            None | Some(Value::Null) if self.required => return Err("is required".into()),
            other => other,
        };
        match &self.kind {
            FeatureKind::Number {
                integer,
                minimum,
                maximum,
                default,
                ..
            } => {
                let number = match value {
                    Some(value) => value.as_f64().ok_or("must be a number")?,
                    None => default.ok_or("is required")?,
                };
                if *integer && number.fract() != 0.0 {
                    return Err("must be a whole number".into());
                }
                if number < *minimum || number > *maximum {
                    return Err(format!("must be between {minimum} and {maximum}"));
                }
                row[self.column] = number as f32;
            }
            FeatureKind::Category {
                categories,
                default,
            } => {
                let category = match value {
                    Some(value) => value.as_str().ok_or("must be a string")?,
                    None => default.as_deref().ok_or("is required")?,
                };
                let index = categories
                    .iter()
                    .position(|c| c == category)
                    .ok_or_else(|| format!("must be one of: {}", categories.join(", ")))?;
                row[self.column + index] = 1.0;
            }
        }
        Ok(())
    }
}

type Plan = std::sync::Arc<TypedRunnableModel>;

/// The optimised network, built once per instance on first use (a cache hit never builds it).
pub fn network() -> anyhow::Result<&'static Plan> {
    static NETWORK: OnceLock<Plan> = OnceLock::new();
    if let Some(plan) = NETWORK.get() {
        return Ok(plan);
    }
    let metadata = metadata();
    let mut model = tract_onnx::onnx().model_for_read(&mut std::io::Cursor::new(ONNX_BYTES))?;
    let batch = model.symbols.sym("N");
    model.set_input_fact(
        0,
        f32::fact([batch.to_dim(), metadata.input.width.to_dim()]).into(),
    )?;
    let plan = model.into_optimized()?.into_runnable()?;
    Ok(NETWORK.get_or_init(|| plan))
}

/// Embeds encoded rows (each `input.width` wide) in one run.
pub fn embed(rows: &[Vec<f32>]) -> anyhow::Result<Vec<Vec<f32>>> {
    let metadata = metadata();
    let width = metadata.input.width;
    let mut flat = Vec::with_capacity(rows.len() * width);
    for row in rows {
        anyhow::ensure!(
            row.len() == width,
            "a row has {} values, not {width}",
            row.len()
        );
        flat.extend_from_slice(row);
    }
    let input = tract_ndarray::Array2::from_shape_vec((rows.len(), width), flat)?;
    let outputs = network()?.run(tvec!(input.into_tensor().into()))?;
    let embeddings = outputs[0].to_plain_array_view::<f32>()?;
    anyhow::ensure!(
        embeddings.shape() == [rows.len(), metadata.output.width],
        "the network returned shape {:?}",
        embeddings.shape()
    );
    Ok(embeddings
        .outer_iter()
        .map(|row| row.iter().copied().collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Reference {
        model: String,
        tolerance: f64,
        cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        a: Value,
        b: Value,
        score: f64,
    }

    fn reference() -> Reference {
        serde_json::from_str(include_str!("../../../models/reference-scores.json")).unwrap()
    }

    #[test]
    fn native_scores_match_the_training_scripts_reference_scores() {
        let reference = reference();
        let metadata = metadata();
        assert_eq!(reference.model, metadata.id());
        for (index, case) in reference.cases.iter().enumerate() {
            let rows = vec![
                metadata.encode(&case.a).unwrap(),
                metadata.encode(&case.b).unwrap(),
            ];
            let embeddings = embed(&rows).unwrap();
            let score = metadata.score(&embeddings[0], &embeddings[1]);
            assert!(
                (score - case.score).abs() <= reference.tolerance,
                "case {index}: {score} vs reference {}",
                case.score
            );
        }
    }

    #[test]
    fn the_metadata_covers_every_input_column_exactly_once() {
        let metadata = metadata();
        let mut covered = vec![0; metadata.input.width];
        for feature in &metadata.features {
            let width = match &feature.kind {
                FeatureKind::Number { .. } => 1,
                FeatureKind::Category { categories, .. } => categories.len(),
            };
            for count in &mut covered[feature.column..feature.column + width] {
                *count += 1;
            }
        }
        assert!(covered.iter().all(|&n| n == 1), "{covered:?}");
    }

    #[test]
    fn scores_are_symmetric_and_identical_properties_score_highest() {
        let reference = reference();
        let metadata = metadata();
        let a = metadata.encode(&reference.cases[0].a).unwrap();
        let b = metadata.encode(&reference.cases[0].b).unwrap();
        let e = embed(&[a, b]).unwrap();
        assert_eq!(metadata.score(&e[0], &e[1]), metadata.score(&e[1], &e[0]));
        assert!(metadata.score(&e[0], &e[0]) >= metadata.score(&e[0], &e[1]));
    }

    #[test]
    fn invalid_properties_name_their_fields() {
        let metadata = metadata();
        let errors = metadata
            .encode(&serde_json::json!({"bogus": 1}))
            .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"bogus"));
        for feature in metadata.features.iter().filter(|f| f.required) {
            assert!(fields.contains(&feature.name.as_str()), "{}", feature.name);
        }
    }
}
