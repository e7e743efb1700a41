"""The bare page (`bare_page.py`) served the way `app.py` serves the app: through
`optimus/app/serving.py` (Streamlit's browser files from memory). `bench app` reports each page
against both bare pages: the stock one is issue 18's reference; this one shows how much of a
page's cost is the page itself, with the serving layer's saving taken out of the comparison."""

from pathlib import Path

import streamlit as st

if __name__ == "__main__":  # a page run: the bare page itself
    import runpy

    runpy.run_path(str(Path(__file__).with_name("bare_page.py")), run_name="__main__")
else:  # imported by `streamlit run`, which serves this st.App
    from starlette.middleware import Middleware

    from optimus.app import serving

    app = st.App(__file__, middleware=[Middleware(serving.StaticFromMemory)])
