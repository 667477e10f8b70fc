"""Pydantic models of the API: command bodies (`commands`), their answers (`results`), query answers
(`queries`) and the shapes they share (`common`)."""
