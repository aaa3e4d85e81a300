"""Feature specification and the reference encoder for the ames-similarity model.

This module is the single source of truth for how an API property object
(snake_case fields) becomes one row of the ONNX input tensor `features`.
The Rust implementation mirrors `encode()` exactly:

* Features are laid out in the order of ``metadata["features"]``; each one
  owns the column(s) starting at its ``column``.
* A number is written as its RAW value in its documented unit (float32).
  It must be a finite number within [minimum, maximum]; when ``integer`` is
  true it must be a whole number (1 and 1.0 are both accepted, 1.5 is not).
* A category is one-hot over ``categories`` in list order (1.0 in the
  matching column, 0.0 in the others). A value outside the list is rejected.
* A missing (absent or null) optional feature takes its ``default``; a
  missing required feature is rejected.
* Unknown fields in the property object are ignored.

Standardisation is NOT done here: it is the first operation inside the ONNX
graph.
"""

from __future__ import annotations

import math

import numpy as np

# Ordered levels of the modeldata factor Overall_Cond, mapped to 1..10.
OVERALL_COND_LEVELS = [
    "Very_Poor", "Poor", "Fair", "Below_Average", "Average",
    "Above_Average", "Good", "Very_Good", "Excellent", "Very_Excellent",
]

# Numeric features: (api name, CSV column or converter, unit, description,
# integer, minimum, maximum, required). Column order of the model input
# follows this list, then the categorical features below.
NUMERIC_FEATURES = [
    ("living_area", "Gr_Liv_Area", "square feet",
     "Above-grade (ground) living area", False, 300, 8000, True),
    ("lot_area", "Lot_Area", "square feet",
     "Lot size", False, 500, 250000, False),
    ("total_basement_area", "Total_Bsmt_SF", "square feet",
     "Total basement area (0 if there is no basement)", False, 0, 7000, False),
    ("year_built", "Year_Built", "year",
     "Original construction year", True, 1850, 2030, True),
    ("overall_condition", "Overall_Cond", "rating 1-10",
     "Overall condition of the house: 1 Very Poor, 2 Poor, 3 Fair, "
     "4 Below Average, 5 Average, 6 Above Average, 7 Good, 8 Very Good, "
     "9 Excellent, 10 Very Excellent", True, 1, 10, False),
    ("bedrooms", "Bedroom_AbvGr", "count",
     "Bedrooms above grade (basement bedrooms not counted)", True, 0, 10, False),
    ("full_baths", "Full_Bath", "count",
     "Full bathrooms above grade", True, 0, 6, False),
    ("half_baths", "Half_Bath", "count",
     "Half bathrooms above grade", True, 0, 4, False),
    ("garage_cars", "Garage_Cars", "cars",
     "Garage capacity in cars (0 if there is no garage)", True, 0, 6, False),
    ("fireplaces", "Fireplaces", "count",
     "Number of fireplaces", True, 0, 5, False),
]

# Categorical features: (api name, CSV column, description, required).
CATEGORY_FEATURES = [
    ("neighborhood", "Neighborhood",
     "Neighbourhood within the Ames city limits (modeldata level names)", True),
    ("building_type", "Bldg_Type",
     "Type of dwelling: OneFam single-family detached, TwoFmCon two-family "
     "conversion, Duplex, Twnhs townhouse inside unit, TwnhsE townhouse end "
     "unit", False),
    ("house_style", "House_Style",
     "Style of dwelling (number of storeys, finished or not, split level)",
     False),
]


def csv_value(row: dict, api_name: str):
    """Value of API feature `api_name` for one CSV row of modeldata::ames."""
    for name, col, *_ in NUMERIC_FEATURES:
        if name == api_name:
            raw = row[col]
            if col == "Overall_Cond":
                return OVERALL_COND_LEVELS.index(raw) + 1
            v = float(raw)
            return int(v) if v.is_integer() else v
    for name, col, *_ in CATEGORY_FEATURES:
        if name == api_name:
            return row[col]
    raise KeyError(api_name)


def row_to_property(row: dict) -> dict:
    """A CSV row as an API property object (all features present)."""
    names = [f[0] for f in NUMERIC_FEATURES] + [f[0] for f in CATEGORY_FEATURES]
    return {n: csv_value(row, n) for n in names}


def build_feature_metadata(train_rows: list, all_rows: list) -> list:
    """The `features` list of the metadata JSON.

    Defaults: training median for numbers (rounded half-up for integer
    features), training mode for categories. Category lists: every level
    that occurs in the CSV, sorted alphabetically.
    """
    out = []
    col = 0
    for name, _c, unit, desc, integer, lo, hi, required in NUMERIC_FEATURES:
        default = None
        if not required:
            med = float(np.median([float(csv_value(r, name)) for r in train_rows]))
            default = int(math.floor(med + 0.5)) if integer else med
        out.append({
            "name": name, "type": "number", "unit": unit, "description": desc,
            "required": required, "integer": integer,
            "minimum": lo, "maximum": hi, "default": default, "column": col,
        })
        col += 1
    for name, _c, desc, required in CATEGORY_FEATURES:
        cats = sorted({csv_value(r, name) for r in all_rows})
        default = None
        if not required:
            counts = {}
            for r in train_rows:
                v = csv_value(r, name)
                counts[v] = counts.get(v, 0) + 1
            default = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        out.append({
            "name": name, "type": "category", "description": desc,
            "required": required, "categories": cats, "default": default,
            "column": col,
        })
        col += len(cats)
    return out


def input_width(metadata: dict) -> int:
    w = 0
    for f in metadata["features"]:
        w += 1 if f["type"] == "number" else len(f["categories"])
    return w


class EncodingError(ValueError):
    pass


def encode(prop: dict, metadata: dict) -> np.ndarray:
    """Encode one property object as a float32 vector of width F."""
    row = np.zeros(metadata["input"]["width"], dtype=np.float32)
    for f in metadata["features"]:
        name = f["name"]
        value = prop.get(name)
        if value is None:
            if f["required"]:
                raise EncodingError(f"missing required feature '{name}'")
            value = f["default"]
        if f["type"] == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise EncodingError(f"'{name}' must be a number")
            v = float(value)
            if not math.isfinite(v):
                raise EncodingError(f"'{name}' must be finite")
            if f["integer"] and not v.is_integer():
                raise EncodingError(f"'{name}' must be a whole number")
            if v < f["minimum"] or v > f["maximum"]:
                raise EncodingError(
                    f"'{name}' must be between {f['minimum']} and {f['maximum']}")
            row[f["column"]] = np.float32(v)
        else:
            if not isinstance(value, str) or value not in f["categories"]:
                raise EncodingError(f"'{name}' is not one of the known categories")
            row[f["column"] + f["categories"].index(value)] = 1.0
    return row


def encode_many(props: list, metadata: dict) -> np.ndarray:
    return np.stack([encode(p, metadata) for p in props]).astype(np.float32)
