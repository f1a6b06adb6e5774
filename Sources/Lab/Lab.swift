// The Lab module: YAML labs (issue 4).
