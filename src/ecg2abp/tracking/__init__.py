"""MLflow as a view of the pipeline's files: one experiment, a parent run per variant, a child
run per variant × fold. The files under results/ stay the record."""
