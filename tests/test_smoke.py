def test_login_page_renders(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert "csrf-token" in response.get_data(as_text=True)


def test_login_and_home(login_as):
    web, user = login_as("caseworker")
    response = web.get("/")
    assert response.status_code == 200
    assert user.full_name in response.get_data(as_text=True)
