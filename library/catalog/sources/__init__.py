"""Copy cataloguing: other libraries' catalogues asked over Z39.50 (YAZ's ZOOM) and SRU (httpx),
and the candidates they send back."""
