from flask import Blueprint
bp = Blueprint("users_api", __name__)
