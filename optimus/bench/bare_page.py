"""The floor a page's cost is measured against (`python -m optimus bench app`): a bare
Streamlit page, served by the same Streamlit with the same .streamlit/config.toml."""

import streamlit as st

st.title("A bare page")
st.write("Streamlit's own cost of a page load in a new session, and nothing else.")
