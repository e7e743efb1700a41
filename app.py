"""Optimus in the browser: `streamlit run app.py`. This file only declares the pages."""

import streamlit as st

from optimus.app.guard import check_host

# An emoji favicon is drawn in the browser (a data: URL); a :material/...: one is fetched from
# fonts.gstatic.com, a console error in an offline room.
st.set_page_config(page_title="Optimus", page_icon="🔢", layout="wide")
check_host()  # DNS rebinding: refuse sessions for other host names (optimus/app/guard.py)

st.navigation(
    [
        st.Page("optimus/app/pages/overview.py", title="Overview", icon=":material/home:", default=True),
        st.Page("optimus/app/pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("optimus/app/pages/sample.py", title="Sample primes", icon=":material/casino:"),
        st.Page("optimus/app/pages/discriminator.py", title="Discriminator vs sympy", icon=":material/rule:"),
        st.Page("optimus/app/pages/density.py", title="Prime density", icon=":material/show_chart:"),
        st.Page("optimus/app/pages/continual.py", title="Continual learning", icon=":material/history:"),
    ]
).run()
