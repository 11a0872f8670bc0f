"""FHIRPath compiled to Python closures for a well-defined subset (see `compiler`), same results as fhirpathpy."""

from carepath.fhir.compiled.compiler import compile_tree
from carepath.fhir.compiled.runtime import Fn, Frame, Invocation, Items, Unsupported, arraify, to_output

__all__ = ["Fn", "Frame", "Invocation", "Items", "Unsupported", "arraify", "compile_tree", "to_output"]
