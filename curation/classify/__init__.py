"""Language and code classification (`corpusmill classify`): pure Arrow batch logic, no Ray."""
