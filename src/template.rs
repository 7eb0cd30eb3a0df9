//! Record name templates such as `{tag:Name}.internal.example.com`.
//!
//! A template is parsed once, when the configuration is loaded, so that a typo
//! in a field name is a configuration error and not a surprise at run time.
//! Rendering is pure: it takes the instance's facts and returns a checked
//! [`DnsName`], or says which field could not be filled and why.

use std::collections::BTreeMap;
use std::fmt;

use crate::dns::{self, DnsName, LabelError, NameError};

/// A field that can stand between braces in a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    InstanceId,
    Region,
    Az,
    /// An instance tag, read from `tags/instance/KEY` in the metadata.
    Tag(String),
    /// The ECS task's id and its cluster's name, from the task metadata.
    TaskId,
    Cluster,
}

impl Field {
    /// True for the fields that come from the ECS task metadata endpoint;
    /// all others come from instance metadata.
    pub fn is_task(&self) -> bool {
        matches!(self, Field::TaskId | Field::Cluster)
    }
}

/// A piece of a template: fixed text, or a field filled per instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Field(Field),
}

/// A parsed name template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameTemplate {
    source: String,
    parts: Vec<Part>,
}

/// Why a template string is not valid.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("`{template}` has a `{{` without a closing `}}`")]
    Unclosed { template: String },
    #[error("`{template}` has a `}}` without an opening `{{`")]
    StrayClose { template: String },
    #[error(
        "`{template}` uses unknown field `{{{field}}}`; \
         known fields are {{instance_id}}, {{region}}, {{az}}, {{tag:KEY}}, {{task_id}} and \
         {{cluster}}"
    )]
    UnknownField { template: String, field: String },
    #[error(
        "`{template}` uses tag key `{key}`, which instance metadata cannot serve \
         (tag keys there may not be empty or contain `/` or spaces)"
    )]
    BadTagKey { template: String, key: String },
    #[error("`{template}` cannot render to one DNS label (letters, digits, inner hyphens)")]
    NotALabel { template: String },
    #[error("`{template}` cannot render to a valid name: {source}")]
    Shape {
        template: String,
        #[source]
        source: NameError,
    },
}

/// The values a template can draw on.
pub trait FieldValues {
    fn instance_id(&self) -> &str;
    fn region(&self) -> &str;
    fn az(&self) -> &str;
    /// `None` when instance metadata tags are not enabled on the instance.
    fn tags(&self) -> Option<&BTreeMap<String, String>>;
    /// The ECS task's id and cluster; `None` outside ECS.
    fn task(&self) -> Option<(&str, &str)> {
        None
    }
}

/// Why a template could not be rendered for this instance.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error(
        "the name uses tag `{key}`, but instance metadata has no tags for this instance: \
         instance metadata tags are not enabled (or the instance has no tag at all yet); enable them with `aws ec2 modify-instance-metadata-options \
         --instance-id {instance_id} --instance-metadata-tags enabled` (or \
         InstanceMetadataTags=enabled in the launch template)"
    )]
    TagsDisabled { key: String, instance_id: String },
    #[error("the instance has no tag `{key}` (yet)")]
    TagMissing { key: String },
    #[error("tag `{key}` has value {value:?}, which cannot be a DNS label: {source}")]
    TagNotALabel {
        key: String,
        value: String,
        #[source]
        source: LabelError,
    },
    #[error("{field} {value:?} cannot be a DNS label: {source}")]
    FieldNotALabel {
        field: &'static str,
        value: String,
        #[source]
        source: LabelError,
    },
    #[error("the rendered name is not valid: {0}")]
    Name(#[from] NameError),
    #[error("{{{field}}} needs the ECS task metadata, which was not read")]
    NoTask { field: &'static str },
    #[error("`{template}` renders to {value:?}, which cannot be one DNS label: {source}")]
    NotALabel {
        template: String,
        value: String,
        #[source]
        source: LabelError,
    },
}

impl NameTemplate {
    /// Parses a template and checks that some rendering of it can be a name.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let parts = split_parts(source)?;
        let template = NameTemplate {
            source: source.to_string(),
            parts,
        };
        template.shape().map_err(|source| TemplateError::Shape {
            template: template.source.clone(),
            source,
        })?;
        Ok(template)
    }

    /// The template as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The template's pieces in order, for callers that must reason about
    /// every rendering at once (the IAM policy, say).
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The fields this template reads.
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        fields(&self.parts)
    }

    /// The literal text after the last field: the part of every rendered
    /// name that is the same for every instance (the whole name when there
    /// is no field).
    pub fn fixed_suffix(&self) -> &str {
        match self.parts.last() {
            Some(Part::Literal(text)) => text,
            _ => "",
        }
    }

    /// Renders the name with placeholder field values. Every field value is one
    /// label and the literal text is fixed, so this name has the same labels
    /// around the fields as any real rendering: it tells whether the template
    /// can ever lie inside a zone.
    pub fn shape(&self) -> Result<DnsName, NameError> {
        let text: String = self
            .parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => text.as_str(),
                Part::Field(_) => "x",
            })
            .collect();
        DnsName::parse(&text)
    }

    /// Fills the fields from `values` and checks the result.
    pub fn render(&self, values: &impl FieldValues) -> Result<DnsName, RenderError> {
        Ok(DnsName::parse(&fill(&self.parts, values)?)?)
    }
}

/// A template that renders to exactly one DNS label, such as a set
/// identifier: `{instance_id}`, `web-{az}`. A label, because the agent also
/// uses it in the name of the record's ownership marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelTemplate {
    source: String,
    parts: Vec<Part>,
}

impl LabelTemplate {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let parts = split_parts(source)?;
        let shape: String = parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => text.as_str(),
                Part::Field(_) => "x",
            })
            .collect();
        dns::check_hostname_label(&shape).map_err(|_| TemplateError::NotALabel {
            template: source.to_string(),
        })?;
        Ok(LabelTemplate {
            source: source.to_string(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        fields(&self.parts)
    }

    pub fn render(&self, values: &impl FieldValues) -> Result<String, RenderError> {
        let value = fill(&self.parts, values)?;
        dns::check_hostname_label(&value).map_err(|source| RenderError::NotALabel {
            template: self.source.clone(),
            value: value.clone(),
            source,
        })?;
        Ok(value)
    }
}

impl<'de> serde::Deserialize<'de> for LabelTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        LabelTemplate::parse(&source).map_err(serde::de::Error::custom)
    }
}

fn fill(parts: &[Part], values: &impl FieldValues) -> Result<String, RenderError> {
    let mut text = String::new();
    for part in parts {
        match part {
            Part::Literal(literal) => text.push_str(literal),
            Part::Field(field) => text.push_str(&field_value(field, values)?),
        }
    }
    Ok(text)
}

fn fields(parts: &[Part]) -> impl Iterator<Item = &Field> {
    parts.iter().filter_map(|part| match part {
        Part::Field(field) => Some(field),
        Part::Literal(_) => None,
    })
}

impl fmt::Display for NameTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl TryFrom<String> for NameTemplate {
    type Error = TemplateError;

    fn try_from(source: String) -> Result<Self, Self::Error> {
        NameTemplate::parse(&source)
    }
}

impl<'de> serde::Deserialize<'de> for NameTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        NameTemplate::parse(&source).map_err(serde::de::Error::custom)
    }
}

fn field_value(field: &Field, values: &impl FieldValues) -> Result<String, RenderError> {
    let (name, value) = match field {
        Field::InstanceId => ("instance id", values.instance_id()),
        Field::Region => ("region", values.region()),
        Field::Az => ("availability zone", values.az()),
        Field::Tag(key) => return tag_value(key, values),
        Field::TaskId => {
            let task = values
                .task()
                .ok_or(RenderError::NoTask { field: "task_id" })?;
            ("task id", task.0)
        }
        Field::Cluster => {
            let task = values
                .task()
                .ok_or(RenderError::NoTask { field: "cluster" })?;
            ("cluster", task.1)
        }
    };
    dns::check_hostname_label(value).map_err(|source| RenderError::FieldNotALabel {
        field: name,
        value: value.to_string(),
        source,
    })?;
    Ok(value.to_string())
}

fn tag_value(key: &str, values: &impl FieldValues) -> Result<String, RenderError> {
    let tags = values.tags().ok_or_else(|| RenderError::TagsDisabled {
        key: key.into(),
        instance_id: values.instance_id().into(),
    })?;
    let value = tags
        .get(key)
        .ok_or_else(|| RenderError::TagMissing { key: key.into() })?;
    dns::check_hostname_label(value).map_err(|source| RenderError::TagNotALabel {
        key: key.into(),
        value: value.clone(),
        source,
    })?;
    Ok(value.clone())
}

fn split_parts(source: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = source;
    while !rest.is_empty() {
        let open = rest.find('{');
        let close = rest.find('}');
        match (open, close) {
            (None, None) => {
                parts.push(Part::Literal(rest.to_string()));
                break;
            }
            (Some(open), Some(close)) if open < close => {
                if open > 0 {
                    parts.push(Part::Literal(rest[..open].to_string()));
                }
                parts.push(Part::Field(parse_field(source, &rest[open + 1..close])?));
                rest = &rest[close + 1..];
            }
            (Some(_), None) => {
                return Err(TemplateError::Unclosed {
                    template: source.into(),
                });
            }
            _ => {
                return Err(TemplateError::StrayClose {
                    template: source.into(),
                });
            }
        }
    }
    Ok(parts)
}

fn parse_field(template: &str, inner: &str) -> Result<Field, TemplateError> {
    match inner {
        "instance_id" => Ok(Field::InstanceId),
        "region" => Ok(Field::Region),
        "az" => Ok(Field::Az),
        "task_id" => Ok(Field::TaskId),
        "cluster" => Ok(Field::Cluster),
        _ => match inner.strip_prefix("tag:") {
            Some(key) if key.is_empty() || key.contains(['/', ' ', '{']) => {
                Err(TemplateError::BadTagKey {
                    template: template.into(),
                    key: key.into(),
                })
            }
            Some(key) => Ok(Field::Tag(key.to_string())),
            None => Err(TemplateError::UnknownField {
                template: template.into(),
                field: inner.into(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Facts {
        tags: Option<BTreeMap<String, String>>,
    }

    impl FieldValues for Facts {
        fn instance_id(&self) -> &str {
            "i-0abc"
        }
        fn region(&self) -> &str {
            "eu-west-1"
        }
        fn az(&self) -> &str {
            "eu-west-1b"
        }
        fn tags(&self) -> Option<&BTreeMap<String, String>> {
            self.tags.as_ref()
        }
    }

    fn with_tags(pairs: &[(&str, &str)]) -> Facts {
        Facts {
            tags: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        }
    }

    #[test]
    fn renders_every_field_and_lowercases() {
        let template =
            NameTemplate::parse("{tag:Name}.{instance_id}.{az}.{region}.Example.com").unwrap();
        let name = template.render(&with_tags(&[("Name", "Web-1")])).unwrap();
        assert_eq!(
            name.as_str(),
            "web-1.i-0abc.eu-west-1b.eu-west-1.example.com."
        );
    }

    #[test]
    fn fields_may_sit_inside_a_label() {
        let template = NameTemplate::parse("app-{instance_id}.example.com.").unwrap();
        let name = template.render(&with_tags(&[])).unwrap();
        assert_eq!(name.as_str(), "app-i-0abc.example.com.");
    }

    #[test]
    fn unknown_fields_and_bad_braces_are_rejected() {
        assert!(matches!(
            NameTemplate::parse("{hostname}.example.com"),
            Err(TemplateError::UnknownField { field, .. }) if field == "hostname"
        ));
        assert!(matches!(
            NameTemplate::parse("{az.example.com"),
            Err(TemplateError::Unclosed { .. })
        ));
        assert!(matches!(
            NameTemplate::parse("az}.example.com"),
            Err(TemplateError::StrayClose { .. })
        ));
        assert!(matches!(
            NameTemplate::parse("{tag:}.example.com"),
            Err(TemplateError::BadTagKey { .. })
        ));
        assert!(matches!(
            NameTemplate::parse("{tag:a/b}.example.com"),
            Err(TemplateError::BadTagKey { .. })
        ));
    }

    #[test]
    fn literal_text_is_checked_at_parse_time() {
        assert!(matches!(
            NameTemplate::parse("{az}..example.com"),
            Err(TemplateError::Shape { .. })
        ));
        assert!(matches!(
            NameTemplate::parse("web server.example.com"),
            Err(TemplateError::Shape { .. })
        ));
    }

    #[test]
    fn tag_problems_name_the_tag() {
        let template = NameTemplate::parse("{tag:Name}.example.com").unwrap();
        assert_eq!(
            template.render(&Facts { tags: None }),
            Err(RenderError::TagsDisabled {
                key: "Name".into(),
                instance_id: "i-0abc".into()
            })
        );
        assert_eq!(
            template.render(&with_tags(&[("Role", "web")])),
            Err(RenderError::TagMissing { key: "Name".into() })
        );
        let err = template
            .render(&with_tags(&[("Name", "web server")]))
            .unwrap_err();
        assert!(matches!(&err, RenderError::TagNotALabel { key, .. } if key == "Name"));
        assert!(err.to_string().contains("tag `Name`"), "{err}");
        let dotted = template.render(&with_tags(&[("Name", "a.b")]));
        assert!(matches!(dotted, Err(RenderError::TagNotALabel { .. })));
    }

    #[test]
    fn tags_disabled_error_says_how_to_enable_them() {
        let message = RenderError::TagsDisabled {
            key: "Name".into(),
            instance_id: "i-0abc".into(),
        }
        .to_string();
        assert!(
            message.contains("--instance-id i-0abc --instance-metadata-tags enabled"),
            "{message}"
        );
    }

    #[test]
    fn task_fields_need_the_task_metadata() {
        let template = NameTemplate::parse("{task_id}.{cluster}.example.com").unwrap();
        assert_eq!(
            template.render(&with_tags(&[])),
            Err(RenderError::NoTask { field: "task_id" })
        );
        assert!(template.fields().all(Field::is_task));
    }

    #[test]
    fn fields_list_tags_and_the_rest() {
        let template = NameTemplate::parse("{tag:Name}-{tag:Env}.{az}.example.com").unwrap();
        let tags: Vec<&Field> = template
            .fields()
            .filter(|f| matches!(f, Field::Tag(_)))
            .collect();
        assert_eq!(
            tags,
            [&Field::Tag("Name".into()), &Field::Tag("Env".into())]
        );
    }

    #[test]
    fn label_templates_render_one_label() {
        let template = LabelTemplate::parse("{instance_id}").unwrap();
        assert_eq!(template.render(&with_tags(&[])).unwrap(), "i-0abc");
        let template = LabelTemplate::parse("web-{tag:Role}").unwrap();
        assert_eq!(
            template.render(&with_tags(&[("Role", "api")])).unwrap(),
            "web-api"
        );
        assert!(matches!(
            LabelTemplate::parse("{instance_id}.x"),
            Err(TemplateError::NotALabel { .. })
        ));
        assert!(matches!(
            LabelTemplate::parse("{tag:Name}")
                .unwrap()
                .render(&with_tags(&[("Name", "a_b")])),
            Err(RenderError::TagNotALabel { .. })
        ));
    }

    #[test]
    fn shape_keeps_literal_labels() {
        let template = NameTemplate::parse("{tag:Name}.internal.example.com").unwrap();
        assert_eq!(
            template.shape().unwrap().as_str(),
            "x.internal.example.com."
        );
    }
}
