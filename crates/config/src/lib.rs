//! The vipd.yaml configuration contract: model, defaults and validation.
